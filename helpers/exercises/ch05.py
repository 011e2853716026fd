"""Checks for chapter 05 (coroutines with gevent): pools, a polite CPU greenlet, monkey patching.

- 05.1 predicts what a ``Pool`` does: the answer is ``{"seconds": …, "most at once": …}``;
- 05.2 makes a CPU-bound greenlet share the hub: the answer is
  ``{"yield_every": iterations, "yield_with": "sleep(0)" | "idle"}``, checked by running it;
- 05.3 predicts which objects ``patch_all()`` replaces: the answer is a set of names from
  `helpers.patching.PATCH_TARGETS`, checked against a real patched child.
"""

from __future__ import annotations

import math
from functools import lru_cache

from . import Point, exercise

# 05.1: 10 downloads of 0.2 s each through a Pool(3).
POOL_TASKS, POOL_SIZE, POOL_SECONDS = 10, 3, 0.2
# 05.1: a prediction within 10 % of the exact figure counts: the reasoning matters, not the digits.
_PREDICTION_TOLERANCE = 0.10
# 05.2: the ticker may be late by at most this much (90 % of its ticks: the rest may be delayed by
# the OS on a busy machine). One hub loop costs well under 1 ms; 20 ms leaves room for a loaded
# machine, while a greenlet that never yields makes most ticks late by a large part of its run.
LATENESS_LIMIT_MS = 20.0
# 05.2: yielding more often than every 0.05 ms of work spends more time switching than computing.
_SMALLEST_CHUNK_SECONDS = 0.00005
# 05.2: the measurement is repeated up to this many times and the best run counts, so one hiccup
# of a shared machine does not fail a right answer.
_ATTEMPTS = 5


@exercise("05.1", "How long does a Pool take?")
def _pool(answer):
    if not isinstance(answer, dict) or {"seconds", "most at once"} - set(answer):
        yield Point(False, "answer should be a dict with keys 'seconds' and 'most at once'")
        return
    waves = math.ceil(POOL_TASKS / POOL_SIZE)
    expected = waves * POOL_SECONDS
    seconds, most = answer["seconds"], answer["most at once"]
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        yield Point(False, f"'seconds' should be a number, got {seconds!r}")
    elif abs(seconds - expected) <= _PREDICTION_TOLERANCE * expected:
        yield Point(True, f"{POOL_TASKS} tasks in groups of at most {POOL_SIZE} make {waves} "
                          f"waves of {POOL_SECONDS} s: {expected:.1f} s")
    elif abs(seconds - POOL_SECONDS) < 0.05:
        yield Point(False, "that is one task's time: the pool lets only some run at once")
    elif abs(seconds - POOL_TASKS * POOL_SECONDS) < 0.05:
        yield Point(False, "that is the serial time: the pool does run several at once")
    else:
        yield Point(False, f"{seconds!r} s is not it: count how many waves of tasks there are")
    if most == POOL_SIZE:
        yield Point(True, f"a Pool({POOL_SIZE}) never lets more than {POOL_SIZE} run at once")
    else:
        yield Point(False, f"'most at once' is not {most!r}: what does the pool's size bound?")


@exercise("05.2", "Make the CPU-bound greenlet share the hub")
def _polite(answer):
    from helpers.chapters.ch05_coroutines.greenlet_demos import YIELDS, cpu_blocks
    from helpers.workloads import iterations_for

    if not isinstance(answer, dict) or {"yield_every", "yield_with"} - set(answer):
        yield Point(False, "answer should be a dict with keys 'yield_every' and 'yield_with'")
        return
    every, how = answer["yield_every"], answer["yield_with"]
    if how not in YIELDS:
        yield Point(False, f"'yield_with' should be one of {YIELDS}, got {how!r}")
        return
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        yield Point(False, f"'yield_every' should be a whole number of iterations, got {every!r}")
        return
    smallest = iterations_for(_SMALLEST_CHUNK_SECONDS)
    if every < smallest:
        yield Point(False, f"yielding every {every} iterations switches more than it computes: "
                           f"use at least {smallest}")
        return
    worst = math.inf
    for _ in range(_ATTEMPTS):
        worst = min(worst, cpu_blocks(0.2, yield_every=every, yield_with=how).value[
            "p90 lateness ms"])
        if worst <= LATENESS_LIMIT_MS:
            break
    if worst <= LATENESS_LIMIT_MS:
        yield Point(True, f"90 % of the ticks were at most {worst:.1f} ms late (limit "
                          f"{LATENESS_LIMIT_MS:.0f} ms)")
    elif how == "sleep(0)":
        yield Point(False, f"ticks were up to {worst:.0f} ms late: sleep(0) lets the hub look at "
                           "timers only every 50 callbacks — smaller chunks, or gevent.idle()")
    else:
        yield Point(False, f"ticks were up to {worst:.0f} ms late: yield more often (fewer "
                           "iterations between yields)")


# 05.3: why patch_all() leaves these alone (the hint for a wrong "replaced").
_NEVER_WAITS = "it never waits on anything, so there is nothing to make cooperative"
_LEFT_ALONE = {
    "os.read": "file reads are not made cooperative (a file is always 'ready' to the event loop); "
               "gevent.os.nb_read or a thread pool is the opt-in",
}


@lru_cache(maxsize=1)
def _patched_names() -> frozenset[str]:
    from helpers.chapters.ch05_coroutines.patching_demos import patch_report
    from helpers.runners import run_patched

    report = run_patched(patch_report, trace=False, timeout=60).value
    return frozenset(name for name, patched in report.items() if patched)


@exercise("05.3", "What does patch_all() replace?")
def _patching(answer):
    if not isinstance(answer, (set, frozenset, list, tuple)):
        yield Point(False, "answer should be a set of names such as {'time.sleep'}")
        return
    known = set(_all_names())
    unknown = set(answer) - known
    if unknown:
        yield Point(False, f"not in the list: {sorted(unknown)}; choose from {sorted(known)}")
        return
    patched = _patched_names()
    for name in sorted(known):
        said = name in answer
        if said == (name in patched):
            yield Point(True, f"{name}: {'replaced' if said else 'left alone'}")
        elif name in patched:
            yield Point(False, f"{name} is replaced: it can wait on the OS (or, for threads and "
                               "locks, on each other), so gevent swaps in a version that yields "
                               "to the hub")
        else:
            yield Point(False, f"{name} is left alone: {_LEFT_ALONE.get(name, _NEVER_WAITS)}")


def _all_names() -> list[str]:
    from helpers.chapters.ch05_coroutines.patching_demos import PATCH_TARGETS

    return [f"{m}.{n}" if n else f"{m} (module)" for m, n in PATCH_TARGETS]
