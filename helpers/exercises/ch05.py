"""Checks for chapter 05 (coroutines with gevent: 05a_coroutines, 05b_patching, 05c_gevent_api).

- 05.1 (05a) runs the reader's CPU-bound greenlet: the answer is the path of a module (written with
  ``%%writefile``) defining ``sum_of_squares(numbers)``; the check runs it beside the 10 ms ticker
  of the chapter and says whether the ticker kept its beat and whether the work was really done;
- 05.2 (05b) predicts which objects ``patch_all()`` replaces: a set of names from
  ``PATCH_TARGETS``, checked against a real patched child, with one verdict for the whole set;
- 05.3 (05b) runs the reader's script ``main(durations)`` in a fresh Python: patched first, its
  plain ``time.sleep`` calls overlap;
- 05.4 (05c) predicts what a ``Pool`` does: the answer is ``{"seconds": …, "most at once": …}``;
- 05.5 (05c) runs the reader's ``fetch_all(fetch, names, limit, timeout)``: bounded concurrency,
  a timeout per fetch, results in order, a deadline for the whole;
- 05.6 (05d) runs the reader's ``async def fetch_all(fetch, urls, limit)`` on a fresh event loop
  in a thread (the kernel's loop is busy running the cell): the most fetches in flight, the
  results in order, a failure that reaches the caller, and no task left pending after it;
- 05.7 (05d) runs the reader's ``async def sum_of_squares(numbers)`` beside a 10 ms ticker task on
  a fresh event loop (05.1 in asyncio): the right sum, the ticker on time, little cost. The ticker
  first runs alone: when it is late by itself, the machine is too busy to judge ("inconclusive").

Data flow of 05.1 and 05.5 (05.3 the same, but in a child Python, since it patches)::

    check("05.k", path) ──> load_function(path, name) ──> run it in this kernel, un-patched
        (gevent.sleep only: nothing is patched) ──> measured facts ──> Points (never the answer)
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

from . import Point, exercise
from .ch00 import load_function

__all__: list[str] = []  # checks register themselves with `exercise`; nothing to import from here

# 05.4: 10 downloads of 0.2 s each through a Pool(3).
POOL_TASKS, POOL_SIZE, POOL_SECONDS = 10, 3, 0.2
# 05.4: a prediction within 10 % of the exact figure counts: the reasoning matters, not the digits.
_PREDICTION_TOLERANCE = 0.10
# 05.1: the ticker may be late by at most this much (90 % of its ticks: the rest may be delayed by
# the OS on a busy machine). One hub loop costs well under 1 ms; 20 ms leaves room for a loaded
# machine, while a greenlet that never yields makes most ticks late by a large part of its run.
LATENESS_LIMIT_MS = 20.0
# 05.1: seconds of work sum_of_squares() is given (as a range calibrated here): long against the
# 10 ms tick.
CRUNCH_SECONDS = 0.2
# 05.1: yielding costs time; the work may take at most this many times as long as done without
# yielding (yielding every ~50 µs of work or more often blows it).
_SLOWDOWN_LIMIT = 2.5
# 05.1 and 05.5: a timing is repeated up to this many times and the best run counts, so one
# hiccup of a shared machine does not fail a right answer.
_ATTEMPTS = 4
# 05.3: the sleeps main() is given: the sum (1.2 s) and the longest (0.6 s) lie far apart, far
# more than a busy machine delays a sleep.
PATCH_DURATIONS = (0.6, 0.4, 0.2)
# 05.3: the bound on the reader's script, interpreter start-up included.
_SCRIPT_TIMEOUT_SECONDS = 60.0
# 05.5: twelve fetches, three at a time; two of them hang (far longer than the timeout).
FETCH_NAMES = tuple(f"page {i}" for i in range(12))
FETCH_LIMIT, FETCH_TIMEOUT = 3, 0.3
_FETCH_SECONDS, _HANG_SECONDS, _HANGING = 0.1, 3.0, ("page 4", "page 9")
# 05.5: the deadline for all twelve: the work spread over 3 slots is (10 × 0.1 + 2 × 0.3) / 3
# ≈ 0.53 s; the deadline adds room for uneven waves and a busy machine, and stays far below the
# serial time with timeouts (1.6 s) and the time of waiting out the hangs (3 s).
FETCH_DEADLINE = 1.2
# 05.5: the check's own bound on the reader's call (a hang is killed after it).
_CALL_LIMIT_SECONDS = 8.0


@exercise("05.4", "How long does a Pool take?")
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


# -- 05.1 ------------------------------------------------------------------------------------
def _squares_workload() -> tuple[range, float]:
    """A range whose sum of squares takes about `CRUNCH_SECONDS` here, and that time measured."""
    probe = range(200_000)
    started = time.perf_counter()
    sum(n * n for n in probe)
    per_number = max(time.perf_counter() - started, 1e-6) / len(probe)
    numbers = range(max(len(probe), min(int(CRUNCH_SECONDS / per_number), 50_000_000)))
    started = time.perf_counter()
    sum(n * n for n in numbers)
    return numbers, time.perf_counter() - started


@exercise("05.1", "A sum of squares that shares the hub")
def _polite(answer):
    from helpers.chapters.ch05_coroutines import beside_ticker
    from helpers.timeline import Trace

    sum_of_squares, points = load_function(answer, "sum_of_squares", 1)
    yield from points
    if sum_of_squares is None:
        return
    numbers, bare = _squares_workload()
    expected = len(numbers) * (len(numbers) - 1) * (2 * len(numbers) - 1) // 6
    best = None
    for _ in range(_ATTEMPTS):
        run = beside_ticker(sum_of_squares, numbers)
        busy = sum(e.duration_ns for e in Trace().extend(run.trace).select(lane="compute")) / 1e9
        facts = (run.value["p90 lateness ms"], run.value["returned"], busy, run.seconds)
        if best is None or facts[0] < best[0]:
            best = facts
        if facts[0] <= LATENESS_LIMIT_MS and facts[3] <= _SLOWDOWN_LIMIT * bare + 0.1:
            best = facts
            break
    late, returned, busy, seconds = best
    if returned == expected and busy >= 0.5 * bare:
        yield Point(True, f"sum_of_squares(range({len(numbers):,})) computed the right sum")
    elif returned != expected:
        yield Point(False, f"sum_of_squares(range({len(numbers):,})) returned {returned!r:.60}, "
                           "not the sum of the squares: are some numbers left out or counted "
                           "twice where one chunk ends and the next begins?")
    else:
        yield Point(False, "sum_of_squares spent far less time computing than adding the squares "
                           "one by one takes: the exercise is to share the hub while computing")
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


# -- 05.2 ------------------------------------------------------------------------------------
# One verdict for the whole set, with the same hint whatever is wrong: it names the reasons gevent
# has for replacing something, and leaves the reader to apply them to each name.
_PATCH_HINT = ("patch_all() replaces what would block the one thread every greenlet shares while "
               "it waits on the OS — where the event loop can wait instead (timers, sockets; not a "
               "regular file, which is always 'ready') — and what must treat greenlets as threads "
               "or cooperate with the event loop (thread identity, locks, fork, signals); go "
               "through the names again with those two questions")


@lru_cache(maxsize=1)
def _patched_names() -> frozenset[str]:
    from helpers.chapters.ch05_coroutines import patch_report
    from helpers.runners import run_patched

    report = run_patched(patch_report, trace=False, timeout=60).value
    return frozenset(name for name, patched in report.items() if patched)


def _all_names() -> list[str]:
    from helpers.chapters.ch05_coroutines import PATCH_TARGETS

    return [f"{m}.{n}" if n else f"{m} (module)" for m, n in PATCH_TARGETS]


@exercise("05.2", "What does patch_all() replace?")
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
    right = sum((name in answer) == (name in patched) for name in known)
    if right == len(known):
        yield Point(True, f"all {len(known)} right: now run the cell below and read why each is "
                          "replaced or left alone")
    else:
        yield Point(False, f"{right} of {len(known)} right: {_PATCH_HINT}")


# -- 05.3 ------------------------------------------------------------------------------------
# Run in a fresh Python: the reader's module runs from its top (its imports, its patching), as it
# would as a program; then main() is timed and gevent says whether time.sleep is its own now.
_PATCH_PROBE = """
import json, runpy, sys, time
namespace = runpy.run_path(sys.argv[1], run_name="cc_exercise")
from gevent import monkey
main = namespace.get("main")
if not callable(main):
    print(json.dumps({"error": "the script defines no function main(durations)"}))
    sys.exit(0)
durations = [float(arg) for arg in sys.argv[2:]]
started = time.perf_counter()
main(durations)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "patched": monkey.is_object_patched("time", "sleep")}))
"""


def _run_script(path: Path) -> dict:
    """What the probe reports about the reader's script, or ``{"error": text}``."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PATCH_PROBE, str(path), *map(str, PATCH_DURATIONS)],
            capture_output=True, text=True, timeout=_SCRIPT_TIMEOUT_SECONDS, cwd=path.parent,
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"error": f"the script did not finish within {_SCRIPT_TIMEOUT_SECONDS:g} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the script failed: {last}"}
    try:
        return json.loads(lines[-1])
    except ValueError:
        return {"error": f"the script printed {lines[-1]!r:.80} last; let main() return instead"}


@exercise("05.3", "Patch first")
def _patch_first(answer):
    if not isinstance(answer, (str, Path)) or not str(answer).endswith(".py"):
        yield Point(False, "answer should be the path of your script, like "
                           "f\"{WORK}/patch_first.py\" (the name after %%writefile)")
        return
    path = Path(answer)
    if not path.is_file():
        yield Point(False, f"there is no file {str(path)!r}: run the %%writefile cell")
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    if "gevent.sleep" in text or "from gevent import sleep" in text:
        yield Point(False, "the script calls gevent's sleep itself: keep the blocking sleep from "
                           "the time module, as unmodified library code would, and make it "
                           "cooperative")
        return
    report = _run_script(path.resolve())
    if "error" in report:
        yield Point(False, report["error"])
        return
    longest, total = max(PATCH_DURATIONS), sum(PATCH_DURATIONS)
    if report["patched"]:
        yield Point(True, "time.sleep is gevent's after your script ran")
    else:
        yield Point(False, "time.sleep was not patched: does the script call monkey.patch_all()?")
    if report["seconds"] < (longest + total) / 2:
        yield Point(True, f"main({list(PATCH_DURATIONS)}) took {report['seconds']:.2f} s: about "
                          f"the longest sleep ({longest} s), not the sum ({total:.1f} s)")
    else:
        yield Point(False, f"main({list(PATCH_DURATIONS)}) took {report['seconds']:.2f} s: the "
                           "sleeps ran one after another — which function does main() call, and "
                           "was it already gevent's when the script took it?")


# -- 05.5 ------------------------------------------------------------------------------------
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


@exercise("05.5", "Fetch with a limit, a timeout and a deadline")
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
                "section of 05b (05b_patching), where a Timeout ends quietly")
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


# -- 05.6 ------------------------------------------------------------------------------------
# Twelve fetches, three at a time, each 50 ms: four waves, about 0.2 s. "page 4" fails after 10 ms,
# while the first wave is still out, so a right answer cancels the other fetches early.
ASYNC_URLS = tuple(f"http://127.0.0.1/page/{i}" for i in range(12))
ASYNC_LIMIT, _ASYNC_FETCH_SECONDS = 3, 0.05
_ASYNC_BROKEN, _ASYNC_BROKEN_AFTER = "http://127.0.0.1/page/4", 0.01
# The check's bound on each call: a right answer takes 0.2 s; a wrong one that serialises the
# fetches 0.6 s. Past this, the run says nothing about the code: "inconclusive".
_ASYNC_CALL_LIMIT = 10.0


class BrokenPage(ConnectionError):
    """What the check's fetch raises for its one broken page."""


async def _trial(fetch_all, broken: bool) -> dict:
    import asyncio

    state = {"now": 0, "most": 0}

    async def fetch(url):
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        try:
            if broken and url == _ASYNC_BROKEN:
                await asyncio.sleep(_ASYNC_BROKEN_AFTER)
                raise BrokenPage(f"{url} is broken")
            await asyncio.sleep(_ASYNC_FETCH_SECONDS)
            return f"<{url}>"
        finally:
            state["now"] -= 1

    me = asyncio.current_task()
    started = time.perf_counter()
    outcome: dict = {}
    try:
        outcome["value"] = await asyncio.wait_for(fetch_all(fetch, list(ASYNC_URLS), ASYNC_LIMIT),
                                                  _ASYNC_CALL_LIMIT)
    except asyncio.TimeoutError:
        outcome["timeout"] = True
    except BaseException as exc:  # noqa: BLE001 - the reader's error is data here
        outcome["error"] = exc
    outcome["seconds"] = time.perf_counter() - started
    outcome["most"] = state["most"]
    outcome["pending"] = sorted(t.get_name() for t in asyncio.all_tasks()
                                if t is not me and not t.done())
    outcome["in flight"] = state["now"]
    others = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for task in others:  # leave nothing behind: the loop closes after this
        task.cancel()
    if others:
        await asyncio.wait(others, timeout=_ASYNC_CALL_LIMIT)
    return outcome


def _holds(error: BaseException, kind: type) -> bool:
    """`error` is a `kind`, or an exception group with one inside."""
    if isinstance(error, kind):
        return True
    return any(_holds(e, kind) for e in getattr(error, "exceptions", ()) or ())


@exercise("05.6", "A bounded fetch that stops at the first failure")
def _bounded_fetch(answer):
    import inspect

    from helpers.chapters.ch05_coroutines import run_in_thread

    fetch_all, points = load_function(answer, "fetch_all", 3)
    yield from points
    if fetch_all is None:
        return
    if not inspect.iscoroutinefunction(fetch_all):
        yield Point(False, "fetch_all should be an `async def` function: the check awaits it")
        return
    fine = run_in_thread(_trial, fetch_all, False, timeout=_ASYNC_CALL_LIMIT + 5)
    failing = run_in_thread(_trial, fetch_all, True, timeout=_ASYNC_CALL_LIMIT + 5)
    if fine.get("timeout") or failing.get("timeout"):
        yield Point.unsure(f"fetch_all did not return within {_ASYNC_CALL_LIMIT:g} s: on a busy "
                           "machine that says nothing, try again (does anything wait without end?)")
        return
    if "error" in fine:
        yield Point(False, f"with every page fine, fetch_all raised "
                           f"{type(fine['error']).__name__}: {fine['error']}")
    else:
        expected = [f"<{url}>" for url in ASYNC_URLS]
        right = fine["value"] == expected
        yield Point(right, "with every page fine, the pages come back in the order of `urls`"
                    if right else "with every page fine, the result should be the list of pages "
                    f"in the order of `urls`, got {fine['value']!r:.80}")
    most = max(fine["most"], failing["most"])
    if most > ASYNC_LIMIT:
        yield Point(False, f"{most} fetches ran at once with limit {ASYNC_LIMIT}: what makes a "
                           "task wait for a free slot?")
    elif fine["most"] < ASYNC_LIMIT:
        yield Point(False, f"at most {fine['most']} fetch ran at once with limit {ASYNC_LIMIT}: "
                           "the fetches should overlap, up to `limit` (tasks, not one await "
                           "after another)")
    else:
        yield Point(True, f"at most {most} fetches in flight, as `limit` says")
    error = failing.get("error")
    if error is None:
        yield Point(False, "a fetch raised, yet fetch_all returned: the failure should reach "
                           "the caller")
    elif _holds(error, BrokenPage):
        yield Point(True, f"the broken page's error reached the caller ({type(error).__name__})")
    else:
        yield Point(False, f"fetch_all raised {type(error).__name__}: {error}, not the fetch's "
                           "own error")
    left = failing["pending"]
    yield Point(not left and not failing["in flight"],
                "no task was left running after the failure" if not left and
                not failing["in flight"] else
                f"{len(left)} tasks ({failing['in flight']} fetches) were still running when "
                "fetch_all raised: who cancels the other fetches, and waits for them to end?")


# -- 05.7 ------------------------------------------------------------------------------------
_TICK_SECONDS = 0.01  # the ticker of 05d's "Blocking the loop", every 10 ms
# Before the reader's function runs, the ticker runs alone this long: its own lateness is the
# machine's noise. Above half the limit, a late ticker says nothing about the reader's code.
_QUIET_SECONDS = 0.1
# While the reader's function runs, the loop's thread never waits (it computes or runs the
# ticker): below this share of a core, the OS gave the rest to other programs (a busy machine).
_STARVED_SHARE = 0.8


async def _crunch_trial(sum_of_squares, numbers) -> dict:
    import asyncio

    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        due = loop.time()
        while not stop.is_set():
            due += _TICK_SECONDS
            await asyncio.sleep(max(0.0, due - loop.time()))
            lateness.append(1000 * (loop.time() - due))

    def p90(values):
        ordered = sorted(values) or [0.0]
        return ordered[int(0.9 * (len(ordered) - 1))]

    clock = asyncio.create_task(ticker())
    outcome: dict = {}
    try:
        await asyncio.sleep(_QUIET_SECONDS)
        outcome["quiet ms"] = p90(lateness)
        lateness.clear()
        started, cpu = time.perf_counter(), time.thread_time()
        outcome["returned"] = await asyncio.wait_for(sum_of_squares(numbers), _CALL_LIMIT_SECONDS)
        outcome["seconds"] = time.perf_counter() - started
        # The loop's thread computes or switches the whole time: a share of a core well below
        # one is time the OS gave to other programs, and the ticks' lateness then measures them.
        outcome["cpu share"] = (time.thread_time() - cpu) / max(outcome["seconds"], 1e-9)
        await asyncio.sleep(3 * _TICK_SECONDS)  # the ticks the work delayed are counted too
    except asyncio.TimeoutError:
        outcome["error"] = (f"sum_of_squares did not return within {_CALL_LIMIT_SECONDS:g} s, "
                            "many times the work's own time: each trip through the loop costs "
                            "time — how much work between two?")
    except Exception as exc:  # noqa: BLE001 - the reader's error is data here
        outcome["error"] = f"sum_of_squares raised {type(exc).__name__}: {exc}"
    finally:
        stop.set()
        clock.cancel()
        await asyncio.gather(clock, return_exceptions=True)
    outcome["late ms"] = p90(lateness)
    return outcome


@exercise("05.7", "A sum of squares that keeps the loop on time")
def _polite_async(answer):
    import inspect

    from helpers.chapters.ch05_coroutines import run_in_thread

    sum_of_squares, points = load_function(answer, "sum_of_squares", 1)
    yield from points
    if sum_of_squares is None:
        return
    if not inspect.iscoroutinefunction(sum_of_squares):
        yield Point(False, "sum_of_squares should be an `async def` function: the check awaits "
                           "it beside the ticker")
        return
    numbers, bare = _squares_workload()
    expected = len(numbers) * (len(numbers) - 1) * (2 * len(numbers) - 1) // 6
    best = None
    for _ in range(_ATTEMPTS):
        run = run_in_thread(_crunch_trial, sum_of_squares, numbers,
                            timeout=_CALL_LIMIT_SECONDS + 5)
        if "error" in run:
            yield Point(False, run["error"])
            return
        if best is None or run["late ms"] < best["late ms"]:
            best = run
        if run["late ms"] <= LATENESS_LIMIT_MS and run["seconds"] <= _SLOWDOWN_LIMIT * bare + 0.1:
            best = run
            break
    if best["returned"] != expected:
        yield Point(False, f"sum_of_squares(range({len(numbers):_})) returned "
                           f"{best['returned']!r:.60}, not the sum of the squares: are some "
                           "numbers left out or counted twice where one chunk ends and the next "
                           "begins?")
    elif best["seconds"] < 0.5 * bare:
        yield Point(False, "sum_of_squares took far less time than adding the squares one by "
                           "one: the exercise is to keep the loop running while computing")
    else:
        yield Point(True, f"sum_of_squares(range({len(numbers):_})) computed the right sum")
    late = best["late ms"]
    if late <= LATENESS_LIMIT_MS:
        yield Point(True, f"90 % of the ticks were at most {late:.1f} ms late (limit "
                          f"{LATENESS_LIMIT_MS:.0f} ms)")
    elif best["quiet ms"] > LATENESS_LIMIT_MS / 2:
        yield Point.unsure(f"the ticker was {best['quiet ms']:.0f} ms late on its own, before "
                           "your function ran: the machine is too busy to judge; try again")
    elif best.get("cpu share", 1.0) < _STARVED_SHARE:
        yield Point.unsure(f"90 % of the ticks were up to {late:.0f} ms late, but the loop's "
                           f"thread got only {best['cpu share']:.0%} of a core while your "
                           "function ran: other programs took the rest, and the lateness "
                           "measures them too. The machine is too busy to judge; try again")
    else:
        yield Point(False, f"90 % of the ticks were up to {late:.0f} ms late (limit "
                           f"{LATENESS_LIMIT_MS:.0f} ms): where does your function let the loop "
                           "run the ticker? (the section \"Blocking the loop\")")
    if best["seconds"] <= _SLOWDOWN_LIMIT * bare + 0.1:
        yield Point(True, "keeping the loop free cost little next to the work")
    else:
        yield Point(False, f"the work took {best['seconds'] / bare:.1f}× as long as without the "
                           "loop: each trip through the loop costs time — how much work between "
                           "two?")
