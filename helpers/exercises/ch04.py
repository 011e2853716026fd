"""Chapter 04 self-checks: Pool.map's chunksize, Amdahl's law, what a failure looks like."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from typing import Any

from helpers.chapters.ch04_pools.amdahl import amdahl_speedup
from helpers.runners import default_chunksize

from . import Point, exercise

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
        yield Point(False, f"{answer} is not it — hint: tasks / (workers × 4), rounded up")


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
        yield Point(False, f"8 workers: {answer.get(8)!r} is not it — 1 / (f + (1 - f) / n)")
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
