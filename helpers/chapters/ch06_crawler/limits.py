"""Open files for requests in flight: each connection, served or made, is a file descriptor.

    site_server.serve ──► raise_open_files_towards(2 × capacity + spare)    the site's child
    models.hold_requests ──► raise_open_files_towards(2 × count + spare)    a crawler's child
"""

from __future__ import annotations

from ...course import check_int

__all__ = ["raise_open_files_towards"]

# Linux never lets a process hold more open files than this (the ceiling of fs.nr_open).
_MAX_NOFILE = 2**30


def raise_open_files_towards(wanted: int) -> None:
    """Raise this process's soft limit on open files towards `wanted`, as far as the hard limit
    allows (a limit already higher stays; where there is none, as on Windows, nothing happens)."""
    wanted = check_int("wanted", wanted, 1, _MAX_NOFILE)
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
