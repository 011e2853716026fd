"""Timing helpers shared by the tests that assert a speed-up.

A speed-up is a property of the machine: two processes finish in half the time only when two cores
are free for them. A test that measured a low ratio must tell a wrong program from a crowded
machine, and it does so from what it measured, not from a guess:

    test starts ──> `measure_contention` (autouse, conftest.py) notes the CPU time used so far by
                    the whole machine and by this test run's own processes
    test measures its speed-up
    skip_if_busy(ratio, what) ──> the CPU the *other* programs used meanwhile, in cores:
        others = (machine's busy time − this run's own) / wall time
        a low ratio with others ≥ `_CONTENDED_CORES`, or on a process allowed one core only
        → skip, with the figures ("inconclusive"); otherwise the test's assertion decides.

The 1-minute load average lags by a minute and counts this run's own threads, so it only adds to
that evidence. Nothing here loosens an assertion: on a quiet machine a low ratio still fails.

A test that cannot show its effect on fewer than n cores (two workers on two cores at once)
skips by the cores this process may use — its affinity mask, as ``taskset -c 0`` or a container
sets it — never by ``os.cpu_count()``, which counts the machine's cores, usable or not::

    @requires_cores(2)                      # a marker, decided at collection
    def test_...():  ...
    skip_unless_cores(2)                    # inside a test, after its own set-up
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

from helpers.course import usable_cores

__all__ = ["busy", "contended_note", "contention_note", "measure_contention", "one_core",
           "others_cores", "own_cpu_seconds", "requires_cores", "skip_if_busy",
           "skip_unless_cores", "usable_cores"]

# Other programs using a quarter of a core on average during a measurement are enough to take a
# speed-up of two workers on two cores below its bar: what they took is missing from ours.
_CONTENDED_CORES = 0.25
_baseline: dict[str, float] = {}


def _too_few(n: int) -> str | None:
    cores = usable_cores()
    if cores >= n:
        return None
    return (f"needs {n} usable cores; this process may use {cores} (its affinity mask), "
            f"of the machine's {os.cpu_count()}")


def skip_unless_cores(n: int) -> None:
    """Skip the calling test, saying why, when this process may use fewer than `n` cores."""
    reason = _too_few(n)
    if reason is not None:
        pytest.skip(reason)


def requires_cores(n: int) -> pytest.MarkDecorator:
    """A marker that skips a test when this process may use fewer than `n` cores."""
    reason = _too_few(n)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


@contextmanager
def one_core() -> Iterator[int]:
    """Pin the calling thread to one of its usable cores for the block (Linux), as ``taskset -c``
    would the whole process: threads it starts inherit the mask, and `usable_cores()` reads 1.
    Processes started from an already-running fork server do not: they keep the server's mask."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs Linux to pin a thread to one core")
    before = os.sched_getaffinity(0)
    core = min(before)
    os.sched_setaffinity(0, {core})  # 0: the calling thread only
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def own_cpu_seconds() -> float:
    """CPU seconds of this process and every live descendant, with what their reaped children
    used (a fork server's workers, a kernel's children)."""
    total = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            t = process.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _machine_busy_seconds() -> float:
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def measure_contention() -> None:
    """Start the window in which `others_cores` measures the other programs (once per test)."""
    _baseline.update(wall=time.monotonic(), machine=_machine_busy_seconds(),
                     own=own_cpu_seconds())


def others_cores() -> float:
    """Cores' worth of CPU that programs outside this test run used since the test started."""
    if not _baseline:
        return 0.0
    wall = time.monotonic() - _baseline["wall"]
    if wall <= 0:
        return 0.0
    machine = _machine_busy_seconds() - _baseline["machine"]
    own = own_cpu_seconds() - _baseline["own"]
    return max(0.0, (machine - own) / wall)


def contention_note() -> str | None:
    """Why a speed-up cannot be judged on this machine right now, or None when it can."""
    cores = usable_cores()
    if cores < 2:
        return f"this process may use {cores} core only (its affinity mask): no speed-up to see"
    return contended_note()


def contended_note() -> str | None:
    """Why a timing that needs no second core (sleepers, waits) cannot be judged right now:
    other programs took a real share of the cores this process may use; None when they did not."""
    cores = usable_cores()
    others = others_cores()
    # Cores outside this process's mask are the others' to use: only what they took beyond those
    # came out of ours.
    spare = max(0, (os.cpu_count() or cores) - cores)
    if others >= spare + _CONTENDED_CORES:
        return f"other programs used {others:.2f} cores meanwhile, of {cores} usable"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load >= cores and others > spare + _CONTENDED_CORES / 2:
        return f"load average {load:.1f} on {cores} usable cores, others {others:.2f} cores"
    return None


def skip_if_busy(ratio: float, what: str, *, at_most: float = 1.3) -> None:
    """Skip, with the figures, when a speed-up fell short while the machine could not show it.

    On a machine where other programs took no real share of the cores during the test, a low
    ratio still fails the test that calls this.
    """
    if ratio > at_most:
        return
    note = contention_note()
    if note is not None:
        pytest.skip(f"inconclusive: {what} {ratio:.2f}×; {note}")


def busy() -> bool:
    """True when the cores this process may use were not free for it during this test."""
    return contention_note() is not None
