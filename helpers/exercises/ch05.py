"""Checks for chapter 05 (coroutines with gevent: 05_coroutines and 05_gevent_api).

- 05.1 predicts what a ``Pool`` does: the answer is ``{"seconds": …, "most at once": …}``;
- 05.2 runs the reader's CPU-bound greenlet: the answer is the path of a module (written with
  ``%%writefile``) defining ``crunch(iterations)``; the check runs it beside the 10 ms ticker of
  the chapter and says whether the ticker kept its beat and whether the work was really done;
- 05.3 predicts which objects ``patch_all()`` replaces: a set of names from ``PATCH_TARGETS``,
  checked against a real patched child;
- 05.4 (05_gevent_api) runs the reader's ``fetch_all(fetch, names, limit, timeout)``: bounded
  concurrency, a timeout per fetch, results in order, a deadline for the whole.

Data flow of 05.2 and 05.4::

    check("05.k", path) ──> load_function(path, name) ──> run it in this kernel, un-patched
        (gevent.sleep only: nothing is patched) ──> measured facts ──> Points (never the answer)
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

from . import Point, exercise
from .ch00 import load_function

__all__: list[str] = []  # checks register themselves with `exercise`; nothing to import from here

# 05.1: 10 downloads of 0.2 s each through a Pool(3).
POOL_TASKS, POOL_SIZE, POOL_SECONDS = 10, 3, 0.2
# 05.1: a prediction within 10 % of the exact figure counts: the reasoning matters, not the digits.
_PREDICTION_TOLERANCE = 0.10
# 05.2: the ticker may be late by at most this much (90 % of its ticks: the rest may be delayed by
# the OS on a busy machine). One hub loop costs well under 1 ms; 20 ms leaves room for a loaded
# machine, while a greenlet that never yields makes most ticks late by a large part of its run.
LATENESS_LIMIT_MS = 20.0
# 05.2: seconds of work crunch() is given (as iterations calibrated here): long against the tick.
CRUNCH_SECONDS = 0.2
# 05.2: yielding costs time; the work may take at most this many times as long as done without
# yielding (yielding every ~50 µs of work or more often blows it).
_SLOWDOWN_LIMIT = 2.5
# 05.2 and 05.4: a timing is repeated up to this many times and the best run counts, so one
# hiccup of a shared machine does not fail a right answer.
_ATTEMPTS = 4
# 05.4: twelve fetches, three at a time; two of them hang (far longer than the timeout).
FETCH_NAMES = tuple(f"page {i}" for i in range(12))
FETCH_LIMIT, FETCH_TIMEOUT = 3, 0.3
_FETCH_SECONDS, _HANG_SECONDS, _HANGING = 0.1, 3.0, ("page 4", "page 9")
# 05.4: the deadline for all twelve: the work spread over 3 slots is (10 × 0.1 + 2 × 0.3) / 3
# ≈ 0.53 s; the deadline adds room for uneven waves and a busy machine, and stays far below the
# serial time with timeouts (1.6 s) and the time of waiting out the hangs (3 s).
FETCH_DEADLINE = 1.2
# 05.4: the check's own bound on the reader's call (a hang is killed after it).
_CALL_LIMIT_SECONDS = 8.0


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


# -- 05.2 ------------------------------------------------------------------------------------
@exercise("05.2", "A CPU-bound greenlet that shares the hub")
def _polite(answer):
    from helpers.chapters.ch05_coroutines import beside_ticker
    from helpers.timeline import Trace
    from helpers.workloads import cpu_task, iterations_for

    crunch, points = load_function(answer, "crunch", 1)
    yield from points
    if crunch is None:
        return
    iterations = iterations_for(CRUNCH_SECONDS)
    started = time.perf_counter()
    cpu_task(iterations)
    bare = time.perf_counter() - started
    best = None
    for _ in range(_ATTEMPTS):
        run = beside_ticker(crunch, iterations)
        busy = sum(e.duration_ns for e in Trace().extend(run.trace).select(lane="compute")) / 1e9
        facts = (run.value["p90 lateness ms"], run.value["returned"], busy, run.seconds)
        if best is None or facts[0] < best[0]:
            best = facts
        if facts[0] <= LATENESS_LIMIT_MS and facts[3] <= _SLOWDOWN_LIMIT * bare + 0.1:
            best = facts
            break
    late, returned, busy, seconds = best
    if returned == iterations and busy >= 0.5 * bare:
        yield Point(True, f"crunch({iterations}) did the work and said so")
    elif returned != iterations:
        yield Point(False, f"crunch({iterations}) returned {returned!r}: it should return how many "
                           "iterations it computed")
    else:
        yield Point(False, "crunch spent far less time computing than the work needs: does it "
                           "call cpu_task for every chunk?")
    if late <= LATENESS_LIMIT_MS:
        yield Point(True, f"90 % of the ticks were at most {late:.1f} ms late (limit "
                          f"{LATENESS_LIMIT_MS:.0f} ms)")
    else:
        yield Point(False, f"90 % of the ticks were up to {late:.0f} ms late (limit "
                           f"{LATENESS_LIMIT_MS:.0f} ms): look again at how each way of yielding "
                           "lets the hub reach its timers (the cell comparing sleep(0) and idle())")
    if seconds <= _SLOWDOWN_LIMIT * bare + 0.1:
        yield Point(True, "yielding cost little next to the work")
    else:
        yield Point(False, f"the work took {seconds / bare:.1f}× as long as without yielding: "
                           "each yield costs a trip through the hub — how much work between two?")


# -- 05.3 ------------------------------------------------------------------------------------
# The same hint for every wrong line, whichever way it is wrong: it names the reasons gevent has
# for replacing something, and leaves the reader to apply them.
_PATCH_HINT = ("look again: patch_all() replaces what would block the one thread every greenlet "
               "shares while it waits on the OS — where the event loop can wait instead (timers, "
               "sockets; not a regular file, which is always 'ready') — and what must treat "
               "greenlets as threads or cooperate with the event loop (thread identity, locks, "
               "fork, signals); which is this?")


@lru_cache(maxsize=1)
def _patched_names() -> frozenset[str]:
    from helpers.chapters.ch05_coroutines import patch_report
    from helpers.runners import run_patched

    report = run_patched(patch_report, trace=False, timeout=60).value
    return frozenset(name for name, patched in report.items() if patched)


def _all_names() -> list[str]:
    from helpers.chapters.ch05_coroutines import PATCH_TARGETS

    return [f"{m}.{n}" if n else f"{m} (module)" for m, n in PATCH_TARGETS]


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
        if (name in answer) == (name in patched):
            yield Point(True, f"{name}: right")
        else:
            yield Point(False, f"{name}: {_PATCH_HINT}")


# -- 05.4 ------------------------------------------------------------------------------------
def _fetch_rig():
    """A fetch() that records how many run at once and which are still running."""
    import gevent

    state = {"now": 0, "most": 0, "running": set()}

    def fetch(name: str) -> str:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        state["running"].add(name)
        try:
            gevent.sleep(_HANG_SECONDS if name in _HANGING else _FETCH_SECONDS)
            return f"<{name}>"
        finally:
            state["now"] -= 1
            state["running"].discard(name)

    return fetch, state


def _call_fetch_all(fetch_all):
    import gevent

    fetch, state = _fetch_rig()
    started = time.perf_counter()
    result, error = None, None
    try:
        with gevent.Timeout(_CALL_LIMIT_SECONDS):
            result = fetch_all(fetch, list(FETCH_NAMES), FETCH_LIMIT, FETCH_TIMEOUT)
    except gevent.Timeout:
        error = f"fetch_all did not return within {_CALL_LIMIT_SECONDS:g} s"
    except Exception as exc:
        error = f"fetch_all raised {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    gevent.sleep(0)  # greenlets the reader killed finish dying here
    still = sorted(state["running"])
    if still:  # leave nothing behind in the reader's kernel
        gevent.sleep(_HANG_SECONDS)
    return result, error, seconds, state["most"], still


@exercise("05.4", "Fetch with a limit, a timeout and a deadline")
def _fetch_all(answer):
    fetch_all, points = load_function(answer, "fetch_all", 4)
    yield from points
    if fetch_all is None:
        return
    for _ in range(_ATTEMPTS):
        result, error, seconds, most, still = _call_fetch_all(fetch_all)
        if error or seconds <= FETCH_DEADLINE:
            break
    if error:
        yield Point(False, error)
        return
    expected = [None if n in _HANGING else f"<{n}>" for n in FETCH_NAMES]
    if not isinstance(result, list) or len(result) != len(FETCH_NAMES):
        yield Point(False, "fetch_all should return a list with one entry per name, got "
                           f"{type(result).__name__} {result!r:.80}")
        return
    fast = [i for i, n in enumerate(FETCH_NAMES) if n not in _HANGING]
    yield Point(all(result[i] == expected[i] for i in fast),
                "every fetch that answered in time is in its name's place" if all(
                    result[i] == expected[i] for i in fast) else
                "some results are missing or out of order: the list must follow `names`")
    slow_ok = all(result[i] is None for i, n in enumerate(FETCH_NAMES) if n in _HANGING)
    yield Point(slow_ok, "the fetches that hung gave None" if slow_ok else
                "a fetch that takes longer than `timeout` should give None: see the Timeouts "
                "section of part 1 (05_coroutines), where a Timeout ends quietly")
    yield Point(most <= FETCH_LIMIT, f"at most {most} fetches ran at once" if most <= FETCH_LIMIT
                else f"{most} fetches ran at once: more than `limit` (see Group and Pool)")
    yield Point(seconds <= FETCH_DEADLINE,
                f"done in {seconds:.2f} s (deadline {FETCH_DEADLINE:g} s)" if seconds <=
                FETCH_DEADLINE else f"took {seconds:.2f} s, past the deadline of "
                f"{FETCH_DEADLINE:g} s: do fetches run at the same time, and does anything wait "
                "out a hang?")
    yield Point(not still, "no fetch was left running afterwards" if not still else
                f"{len(still)} fetches were still running after fetch_all returned: a greenlet "
                "you give up on keeps running until it is killed")
