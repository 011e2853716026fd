"""How many files a process may open: each of the chapter's 10,000 clients is a file descriptor.

Linux allows a process a *soft* number of open files (often 1,024) that it may raise itself up
to a *hard* limit; a child inherits both::

    kernel:  memory.idle_memory ──► open_files_limit()      how many clients fit at all
    children: prefork.serve, loadgen.hold_idle ──► raise_open_files(needed)   before they hold them
"""

from __future__ import annotations

from ...course import check_int

__all__ = ["MAX_CONNECTIONS", "open_files_limit", "raise_open_files"]

# The most connections a load generator opens: enough for the chapter's 10,000 idle connections,
# far below the ephemeral ports of one address.
MAX_CONNECTIONS = 20_000
# Linux never lets a process hold more open files than this (the ceiling of fs.nr_open).
_MAX_NOFILE = 2**30


def open_files_limit() -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE of this process; a child inherits both.

    An infinite limit reads as four times `MAX_CONNECTIONS`: room for any run of the chapter.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    return (MAX_CONNECTIONS * 4 if soft == infinite else soft,
            MAX_CONNECTIONS * 4 if hard == infinite else hard)


def raise_open_files(needed: int) -> int:
    """Raise this process's soft open-file limit to `needed` (within the hard limit)."""
    import resource

    needed = check_int("needed", needed, 1, _MAX_NOFILE)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ValueError(f"needed must be at most {hard:,} open files, the most this system "
                         f"allows a process (the hard RLIMIT_NOFILE), got {needed:,}: use fewer "
                         f"connections, or raise the hard limit (e.g. `ulimit -Hn {needed}` as "
                         "root, or LimitNOFILE=)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed
