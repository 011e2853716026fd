"""Where the load generator and the server run: on cores of their own, for a fair comparison.

On a 2-core machine the scheduler may put a server and the generator loading it on one core
for one round and on two cores for the next, and the two placements differ in requests/s by
more than any two servers do. `cores_apart` fixes the placement for a round: the generator
(the calling process) on the first usable core, every thread of the servers on the last::

    with cores_apart(server_pids):    generator ──► core 0      server threads ──► core 1
        ...load the server...
    (on exit every thread gets back the cores the generator had, threads born meanwhile too)

Where affinity cannot be set (macOS, Windows, one usable core) it changes nothing and says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from ...course import check_int

__all__ = ["cores_apart"]

# Linux process ids are at most 2**22 (pid_max's ceiling).
_MAX_PID = 2**22


def cores_apart(server_pids: Sequence[int]) -> AbstractContextManager[tuple[int, int] | None]:
    """A ``with`` block with the caller on one core and every thread of `server_pids` on another.

    It gives ``(generator core, server core)``, or None where nothing was pinned (no affinity
    on this OS, one usable core).
    """
    if isinstance(server_pids, (str, bytes)) or not isinstance(server_pids, Sequence):
        raise TypeError(f"server_pids must be a list of process ids, got {server_pids!r}")
    if not server_pids:
        raise ValueError("server_pids must name at least one process, got an empty list")
    pids = [check_int("server_pids", pid, 1, _MAX_PID) for pid in server_pids]
    return _apart(pids)


@contextmanager
def _apart(server_pids: list[int]) -> Iterator[tuple[int, int] | None]:
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    usable = os.sched_getaffinity(0)
    if len(usable) < 2:
        yield None
        return
    generator_core, server_core = min(usable), max(usable)
    try:
        _pin(os.getpid(), {generator_core})
        for pid in server_pids:
            _pin(pid, {server_core})
        yield generator_core, server_core
    finally:
        for pid in (*server_pids, os.getpid()):
            _pin(pid, usable)


def _pin(pid: int, cores: set[int]) -> None:
    """Every thread of `pid` on `cores` (a thread that ended meanwhile is skipped)."""
    import psutil

    try:
        threads = psutil.Process(pid).threads()
    except psutil.Error:  # the process is gone: nothing to place
        return
    for thread in threads:
        try:
            os.sched_setaffinity(thread.id, cores)  # a thread id: that thread alone, on Linux
        except OSError:  # it ended between the listing and here, or is not ours to move
            pass
