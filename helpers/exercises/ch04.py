"""Chapter 04 self-checks: Pool.map's chunksize, Amdahl's law, what a failure looks like, and a
pool call the reader writes that must meet a time target on uneven tasks.

- 04.4 runs the reader's ``run_all(pool, items)`` (a module written with ``%%writefile``) on a
  warm pool of 2 workers, with tasks whose long ones sit at the end of the list, next to
  ``pool.map(cpu_task, items)`` with its default chunksize, measured side by side::

      check("04.4", path) ──> load_function ──> process_pool(2) ──> reader's run_all, default map
          ──> results in order? time ≤ TARGET × default's? ──> Points
"""

from __future__ import annotations

import time
from concurrent.futures.process import BrokenProcessPool
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


_EXPECTED_FAILURES = {
    "task raises (Pool.map)": (ValueError, "the task's own exception, re-raised in the kernel "
                                           "with the worker's traceback as its cause"),
    "worker dies (executor)": (BrokenProcessPool, "the executor notices the dead process at once"),
    "worker dies (Pool.map)": (None, "nothing: Pool replaces the worker but the task is lost, and "
                                     "map waits forever — always pass a timeout"),
}


@exercise("04.3", "What reaches the kernel when things fail")
def _failures(answer: Any):
    if not isinstance(answer, dict):
        yield Point(False, f"answer should be a dict with the keys {list(_EXPECTED_FAILURES)}")
        return
    for key, (expected, why) in _EXPECTED_FAILURES.items():
        given = answer.get(key, ...)
        if given is ...:
            yield Point(False, f"missing the key {key!r}")
        elif given is expected:
            yield Point(True, f"{key}: {getattr(expected, '__name__', expected)} — {why}")
        else:
            shown = getattr(given, "__name__", repr(given))
            yield Point(False, f"{key}: {shown} is not it — look at the reports above")


# -- 04.4 ------------------------------------------------------------------------------------
# 42 short tasks of ~5 ms, then 6 long ones of 20× that: Pool.map's default chunksize (6 for 48
# tasks on 2 workers) puts all six long ones in its last chunk, so one worker does most of the
# work (~600 of ~810 ms) while the other waits; shared out, each does about half.
UNEVEN_TASKS, UNEVEN_TASK_MS, UNEVEN_LONG = 48, 5.0, 6
# The reader's call must take at most this fraction of the default map's time, measured side by
# side. Balanced is about 0.67 of it on an idle 2-core machine; 0.85 leaves room for noise.
TARGET = 0.85
_ATTEMPTS = 2
# A reader's call within this factor of the check's own balanced call counts as balanced too: the
# two are timed moments apart, and a burst of load may hit one and not the other.
_AS_GOOD = 1.15


@exercise("04.4", "A pool call that shares uneven work")
def _balanced(answer: Any):
    from helpers.chapters.ch04_pools import uneven_items
    from helpers.course import kernel_safe_start_method, usable_cores
    from helpers.runners import process_pool
    from helpers.workloads import cpu_task

    run_all, points = load_function(answer, "run_all", 2)
    yield from points
    if run_all is None:
        return
    items = uneven_items(UNEVEN_TASKS, UNEVEN_TASK_MS, UNEVEN_LONG)
    expected = [cpu_task(n) for n in items]
    best, default_best, shared_best, got = float("inf"), float("inf"), float("inf"), None

    def timed(call) -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    with process_pool(2, kernel_safe_start_method()) as pool:
        pool.map_async(time.sleep, [0.02] * 2, chunksize=1).get(60)  # both workers up
        for _ in range(_ATTEMPTS):
            started = time.perf_counter()
            try:
                got = run_all(pool, items)
            except Exception as exc:
                yield Point(False, f"run_all raised {type(exc).__name__}: {exc}")
                return
            best = min(best, time.perf_counter() - started)
            default_best = min(default_best, timed(lambda: pool.map_async(cpu_task, items)
                                                   .get(120)))
            # A reference that shares the work out: can this machine show the difference now?
            shared_best = min(shared_best, timed(lambda: pool.map_async(
                cpu_task, items, chunksize=1).get(120)))
            if got != expected or best <= TARGET * default_best or best <= _AS_GOOD * shared_best:
                break
    got = list(got) if got is not None and not isinstance(got, list) else got
    if got != expected:
        yield Point(False, "run_all should return every task's result, in the order of items "
                           "(compare with pool.map's)")
        return
    yield Point(True, "every result, in order")
    if best <= TARGET * default_best or (best <= _AS_GOOD * shared_best
                                         and shared_best <= TARGET * default_best):
        yield Point(True, f"{best:.2f} s against the default chunksize's {default_best:.2f} s: "
                          f"within the target ({TARGET:.0%}), or as fast as a call that shares "
                          "the work out")
    elif usable_cores() < 2 or shared_best > TARGET * default_best:
        yield Point(True, f"{best:.2f} s against {default_best:.2f} s, but this machine cannot "
                          "show the difference right now (no free core: a reference that shares "
                          "the work out was no faster); run the check again when it is quieter")
    else:
        yield Point(False, f"{best:.2f} s against the default chunksize's {default_best:.2f} s: "
                           f"not within {TARGET:.0%} of it — where are the long tasks, which "
                           "chunk do they land in, and which worker gets that chunk?")
