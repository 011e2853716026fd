"""Chapter 04 self-checks: Pool.map's chunksize, Amdahl's law, a pool call the reader writes
that must share uneven work out with a timeout on every wait, and where a task's exception lands.

- 04.3 runs the reader's ``run_all(pool, task, items)`` (a module written with ``%%writefile``)
  on a warm pool of 2 workers, with tasks whose long ones sit at the end of the list. The task is
  ``Traced(cpu_task)``, so every result says which worker ran it: the check judges the balance
  from that evidence, not from a stopwatch that a busy machine would fool. The pool it hands over
  notes every wait and whether it had a timeout::

      check("04.3", path) ──> load_function ──> process_pool(2) ──> _WatchedPool(pool)
          ──> run_all(watched, Traced(cpu_task), items) ──> results in order?
          ──> work per worker pid: the busiest ≤ MAX_SHARE? (if not, a chunksize-1 reference:
              could this machine share it out at all? if not: "inconclusive", never ✓)
          ──> watched.waits: every wait with a timeout?
"""

from __future__ import annotations

import time
from typing import Any

from helpers.chapters.ch04_pools.amdahl import amdahl_speedup
from helpers.runners import default_chunksize

from . import Point, exercise
from .ch00 import load_function

__all__: list[str] = []  # checks register themselves with `exercise`; nothing to import from here

# The exercise's numbers (the markdown cell states them).
CHUNK_TASKS, CHUNK_WORKERS = 2000, 2
AMDAHL_FRACTION = 0.1
# 2 % tolerance: a reader computing by hand rounds to two decimals.
_REL_TOLERANCE = 0.02


@exercise("04.1", "The chunksize Pool.map chooses")
def _chunksize(answer: Any):
    expected = default_chunksize(CHUNK_TASKS, CHUNK_WORKERS)
    if isinstance(answer, bool) or not isinstance(answer, int):
        yield Point(False, f"answer should be a whole number, got {answer!r}")
    elif answer == expected:
        yield Point(True, f"{expected}: {CHUNK_TASKS} tasks in about 4 chunks per worker, "
                          f"{CHUNK_WORKERS} workers → 8 chunks")
    elif answer == 1:
        yield Point(False, "1 is what imap and the executor use by default; Pool.map groups "
                           "tasks: about 4 chunks per worker")
    else:
        yield Point(False, f"{answer} is not it — see the chunksize section: how many chunks per "
                           "worker does Pool.map aim for, and how does it round?")


def _close(value: Any, expected: float) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and abs(value - expected) <= _REL_TOLERANCE * expected)


@exercise("04.2", "Amdahl's law")
def _amdahl(answer: Any):
    if not isinstance(answer, dict):
        yield Point(False, "answer should be a dict like {8: ..., 'limit': ...}")
        return
    eight = amdahl_speedup(AMDAHL_FRACTION, 8)
    limit = 1 / AMDAHL_FRACTION
    if _close(answer.get(8), eight):
        yield Point(True, f"8 workers: {eight:.2f}× — far from 8×, the serial 10 % dominates")
    else:
        yield Point(False, f"8 workers: {answer.get(8)!r} is not it — see Amdahl's law above: "
                           "the serial part does not shrink, the rest is shared by the workers")
    if _close(answer.get("limit"), limit):
        yield Point(True, f"limit: {limit:.0f}× — with infinitely many workers only f remains")
    else:
        yield Point(False, f"limit: {answer.get('limit')!r} is not it — let n grow without bound")


# -- 04.3 ------------------------------------------------------------------------------------
# 42 short tasks of ~5 ms, then 6 long ones of 20× that: Pool.map's default chunksize (6 for 48
# tasks on 2 workers) puts all six long ones in its last chunk, so one worker gets those 120 of
# the 162 short-task units of work (74 %) whatever the machine's load, and usually 3 short chunks
# besides (85 %). Shared out with a small chunksize, each does about half (chunksizes 2 and 4
# leave about 62 % on one).
UNEVEN_TASKS, UNEVEN_TASK_MS, UNEVEN_LONG = 48, 5.0, 6
# The most of the work one worker may do: below the default's 74 % at the very least, above what
# a chunksize that splits the long tasks leaves (62 %), with room for a busy machine's unevenness.
MAX_SHARE = 0.7
_REFERENCE_TIMEOUT = 120.0  # the check's own calls: seconds of work at most, even under load


class _WatchedResult:
    """An AsyncResult that notes whether each wait on it had a timeout."""

    def __init__(self, result, what: str, waits: list) -> None:
        self._result, self._what, self._waits = result, what, waits

    def get(self, timeout=None):
        self._waits.append((f"{self._what}.get()", timeout is not None or self._result.ready()))
        return self._result.get(timeout)

    def wait(self, timeout=None):
        self._waits.append((f"{self._what}.wait()", timeout is not None))
        return self._result.wait(timeout)

    def __getattr__(self, name: str):
        return getattr(self._result, name)


class _WatchedIterator:
    """An imap iterator that notes whether each wait on it had a timeout."""

    def __init__(self, iterator, what: str, waits: list) -> None:
        self._iterator, self._what, self._waits = iterator, what, waits

    def __iter__(self):
        return self

    def __next__(self):
        self._waits.append((f"iterating over {self._what}", False))
        return next(self._iterator)

    def next(self, timeout=None):
        if not hasattr(self._iterator, "next"):  # imap with chunksize > 1: a plain generator
            self._waits.append((f"{self._what}.next() with a chunksize above 1", False))
            return next(self._iterator)
        self._waits.append((f"{self._what}.next()", timeout is not None))
        return self._iterator.next(timeout)


class _WatchedPool:
    """The pool handed to the reader's `run_all`: a real warm pool whose waits are noted.

    Blocking calls (`map`, `starmap`, `apply`) are waits without a timeout by definition; the
    async calls and `imap` hand back results that note how they are waited on.
    """

    def __init__(self, pool) -> None:
        self._pool = pool
        self.waits: list[tuple[str, bool]] = []  # (which wait, had a timeout)

    def __getattr__(self, name: str):
        method = getattr(self._pool, name)
        what = f"pool.{name}(...)"
        if name in ("map", "starmap", "apply"):
            def blocking(*args, **kwargs):
                self.waits.append((what, False))
                return method(*args, **kwargs)
            return blocking
        if name in ("map_async", "starmap_async", "apply_async"):
            return lambda *args, **kwargs: _WatchedResult(method(*args, **kwargs), what,
                                                          self.waits)
        if name in ("imap", "imap_unordered"):
            return lambda *args, **kwargs: _WatchedIterator(method(*args, **kwargs), what,
                                                            self.waits)
        return method


def _largest_share(results, items) -> float:
    """The largest fraction of the work (in iterations) that one worker process did."""
    work: dict[int, int] = {}
    for result, size in zip(results, items):
        pid = result.recording.events[0].pid
        work[pid] = work.get(pid, 0) + size
    return max(work.values()) / sum(work.values())


@exercise("04.3", "A pool call that shares uneven work, with a timeout")
def _balanced(answer: Any):
    import os

    from helpers.chapters.ch04_pools import uneven_items
    from helpers.course import kernel_safe_start_method
    from helpers.runners import process_pool
    from helpers.timeline import Traced, TracedResult
    from helpers.workloads import cpu_task

    run_all, points = load_function(answer, "run_all", 3)
    yield from points
    if run_all is None:
        return
    items = uneven_items(UNEVEN_TASKS, UNEVEN_TASK_MS, UNEVEN_LONG)
    expected = [cpu_task(n) for n in items]
    with process_pool(2, kernel_safe_start_method()) as pool:
        pool.map_async(time.sleep, [0.02] * 2, chunksize=1).get(60)  # both workers up
        watched = _WatchedPool(pool)
        try:
            got = run_all(watched, Traced(cpu_task), items)
        except Exception as exc:
            yield Point(False, f"run_all raised {type(exc).__name__}: {exc}")
            return
        got = list(got) if got is not None and not isinstance(got, (str, bytes)) else got
        if not (isinstance(got, list) and all(isinstance(r, TracedResult) for r in got)):
            yield Point(False, "run_all should return what task(n) returns for each n, as a "
                               f"list: got {type(got).__name__}; call the task it is given")
            return
        if [r.value for r in got] != expected:
            yield Point(False, "run_all should return every task's result, in the order of "
                               "items (compare with pool.map's)")
            return
        yield Point(True, "every result, in order")
        if any(r.recording.events[0].pid == os.getpid() for r in got):
            yield Point(False, "some tasks ran in the kernel, not on the pool: hand them to pool")
            return
        share = _largest_share(got, items)
        reference = None
        if share > MAX_SHARE:  # can this machine share the work out right now?
            reference = _largest_share(pool.map_async(Traced(cpu_task), items, chunksize=1)
                                       .get(_REFERENCE_TIMEOUT), items)
    if share <= MAX_SHARE:
        yield Point(True, f"the busiest worker did {share:.0%} of the work (at most "
                          f"{MAX_SHARE:.0%}): the long tasks were shared out")
    elif reference is not None and reference > MAX_SHARE:
        yield Point.unsure(f"the busiest worker did {share:.0%} of the work, but "
                           f"a call that shares the work out left {reference:.0%} on one worker "
                           "too — the machine is too busy to tell; run the check again later")
    else:
        yield Point(False, f"the busiest worker did {share:.0%} of the work (at most "
                           f"{MAX_SHARE:.0%} wanted): where are the long tasks, which chunk do "
                           "they land in, and which worker gets that chunk?")
    untimed = sorted({what for what, timed in watched.waits if not timed})
    if untimed:
        yield Point(False, f"{', '.join(untimed)} waits without a timeout: if a worker dies, it "
                           "waits forever (part b); use a call whose wait takes one")
    elif not watched.waits:
        yield Point(False, "the check saw no wait on the pool's results: collect them with a "
                           "wait that takes a timeout")
    else:
        yield Point(True, "every wait has a timeout")


# -- 04.4 ------------------------------------------------------------------------------------
# Eight tasks, fail_on(3) raises. How many results does each loop hold when it is done?
_LOOPS = {
    "Pool.imap, a for loop": (3, "results 0, 1 and 2 arrive in input order; the next one is "
                                 "item 3's exception, which ends the loop"),
    "Pool.imap, a try around each next()": (7, "every item has its own outcome: after item 3's "
                                               "exception the iterator goes on with item 4"),
    "Executor.map, a for loop": (3, "the same order as imap; the exception ends the loop, and "
                                    "the generator with it: the tasks not started are cancelled"),
}


@exercise("04.4", "Where the exception lands")
def _loops(answer: Any):
    if not isinstance(answer, dict):
        yield Point(False, f"answer should be a dict with the keys {list(_LOOPS)}")
        return
    for key, (expected, why) in _LOOPS.items():
        given = answer.get(key, ...)
        if given is ...:
            yield Point(False, f"missing the key {key!r}")
        elif isinstance(given, bool) or not isinstance(given, int):
            yield Point(False, f"{key}: answer with a whole number of results, got {given!r}")
        elif given == expected:
            yield Point(True, f"{key}: {expected} — {why}")
        elif key.startswith("Pool.imap, a try"):
            yield Point(False, f"{key}: {given} is not it — does one failed item end an imap "
                               "iterator, or does each item carry its own outcome?")
        else:
            yield Point(False, f"{key}: {given} is not it — in which order do the results "
                               "come, and what does an exception do to a for loop?")
