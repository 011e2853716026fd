"""helpers.runners.coroutines: gevent and asyncio in a thread of their own, greenlets in processes.

Overlap is asserted from the recorded spans, and a wait-bound run against the sum of its waits:
200 waits of 50 ms take 10 s one after the other, well under a second when they overlap.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from _timing import skip_unless_cores

from helpers.chapters.ch08_choosing.workloads import gevent_wait, python_cpu, wait
from helpers.runners import compare
from helpers.runners.coroutines import run_asyncio, run_gevent, run_gevent_in_processes
from helpers.workloads import iterations_for

WAITS, WAIT_SECONDS = 200, 0.05


async def coroutine_wait(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


def fails_on_two(x: int) -> int:
    if x == 2:
        raise KeyError("two")
    return x


def test_gevent_overlaps_cooperative_waits():
    run = run_gevent(gevent_wait, [(WAIT_SECONDS,)] * WAITS)
    assert run.values == [WAIT_SECONDS] * WAITS and run.ok
    assert run.seconds < 0.25 * WAITS * WAIT_SECONDS
    waits = run.trace.select(kind="io")
    assert len(waits) == WAITS and len(run.trace.lanes()) == WAITS
    assert run.trace.overlap_ns("greenlet 1", "greenlet 2", kind="io") > 0


def test_gevent_pool_bounds_the_greenlets_and_leaves_no_thread():
    before = set(threading.enumerate())
    run = run_gevent(gevent_wait, [(0.02,)] * 12, size=3)
    assert len(run.trace.lanes()) == 3  # three slots, each reused four times
    assert 4 * 0.02 <= run.seconds
    assert set(threading.enumerate()) <= before


def test_unpatched_blocking_waits_take_turns_in_gevent():
    run = run_gevent(wait, [(0.05,)] * 4)
    assert run.seconds >= 4 * 0.05 * 0.95
    # Each greenlet ran to its end before the next started: one slot was ever in use at once.
    assert run.trace.lanes() == ["greenlet 1"]
    spans = sorted(run.trace.select(kind="io"), key=lambda e: e.start_ns)
    assert all(a.end_ns <= b.start_ns for a, b in zip(spans, spans[1:]))


def test_asyncio_runs_coroutines_on_one_loop():
    run = run_asyncio(coroutine_wait, [(WAIT_SECONDS,)] * WAITS)
    assert run.values == [WAIT_SECONDS] * WAITS
    assert run.seconds < 0.25 * WAITS * WAIT_SECONDS
    assert run.details["mode"] == "coroutines"


def test_asyncio_sends_plain_functions_to_threads():
    run = run_asyncio(time.sleep, [(0.05,)] * 8)
    assert run.details["mode"] == "to_thread"
    assert all(lane.startswith("to_thread") for lane in run.trace.lanes())
    # The sleeps overlapped in threads: read off the spans, not the wall clock.
    spans = [(e.start_ns, e.end_ns) for e in run.trace]
    peak = max(sum(1 for start, end in spans if start <= t < end) for t, _ in spans)
    assert peak >= 2, f"the blocking calls ran one at a time ({len(spans)} spans)"


@pytest.mark.parametrize("runner", [run_gevent, run_asyncio])
def test_failures_come_back_as_data(runner):
    run = runner(fails_on_two, [(i,) for i in range(4)])
    assert run.values == [0, 1, None, 3]
    assert run.failures[2].type_name == "KeyError"


def test_a_stuck_run_raises_timeout_and_stops():
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        run_gevent(gevent_wait, [(5.0,)] * 3, timeout=0.2)
    assert time.perf_counter() - started < 3.0


def test_gevent_in_processes_runs_greenlets_on_every_worker(start_method):
    run = run_gevent_in_processes(gevent_wait, [(0.1,)] * 40, workers=2,
                                  start_method=start_method)
    assert run.values == [0.1] * 40 and run.ok
    pids = {e.pid for e in run.trace.events}
    assert len(pids) == 2
    assert run.seconds < 0.4 * 40 * 0.1  # each process alone, one wait at a time: 0.5 * 40 * 0.1


def test_gevent_in_processes_computes_in_parallel():
    skip_unless_cores(2)  # on one core, time-sliced spans overlap too: they would show nothing
    n = iterations_for(0.1)
    run = run_gevent_in_processes(python_cpu, [(n,)] * 4, workers=2)
    lanes = run.trace.lanes()
    assert len({e.pid for e in run.trace.events}) == 2
    busiest = [lane for lane in lanes if run.trace.busy_ns(lane) > 0]
    assert any(run.trace.overlap_ns(a, b) > 0 for a in busiest for b in busiest
               if a < b and a.split()[1] != b.split()[1])


def test_compare_knows_the_coroutine_models():
    comparison = compare(["serial", "gevent", "asyncio", "gevent-in-processes"], time.sleep,
                         [(0.01,)] * 4, workers=2)
    assert set(comparison.runs) == {"serial", "gevent", "asyncio", "gevent-in-processes"}


def test_bad_values_are_refused_before_any_work():
    with pytest.raises(ValueError, match="size"):
        run_gevent(wait, [(0.01,)], size=0)
    with pytest.raises(ValueError, match="workers"):
        run_gevent_in_processes(wait, [(0.01,)], workers=0)
    with pytest.raises(ValueError, match="tasks"):
        run_asyncio(wait, [])
