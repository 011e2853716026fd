"""Foundation figures: what recording a timeline costs, and how fast a big one draws.

- ``process_recording_overhead``: what recording adds to a ~1 s task: the measured cost of one
  traced span (recorded and pickled, timed over 2,000 calls) against the measured task. Bar: ≤ 1.03.
  ``process_recording_side_by_side`` is the direct check: two processes each run ~1 s of CPU work,
  bare and `Traced`, interleaved; on a shared VM it moves by a few percent either way.
- ``chunked_recording_overhead``: the same with chapter 00's chunked recorder, which splits the work
  into ~0.2 ms chunks to show GIL waits. Not a bar: the price of the finer picture.
- ``greenlet_trace_overhead``: see ``bench/coroutines.py`` (the switching benchmark). Bar: ≤ 1.3.
- ``plot_100k_spans``: `plot_timeline` on 100,000 spans, drawn to a canvas. Bar: ≤ 1 s.
"""

from __future__ import annotations

import pickle
import statistics
import time
from functools import partial

from helpers.chapters.ch00_start_here import record_cpu_work
from helpers.course import available_start_methods, mp_context
from helpers.timeline import KINDS, Event, Recorder, Traced, plot_timeline
from helpers.workloads import cpu_task, iterations_for

# Pairs of (bare, recorded) runs, interleaved so slow drifts hit both sides. Each task is timed
# in its own process by CPU time (`time.process_time`), recording included: on this shared virtual
# machine wall time of the same 1 s task varies by 5-30 % with the neighbours' load, CPU time by
# far less. The figure is the ratio of the medians.
_PAIRS = 7
_TASK_SECONDS = 1.0


def _bare(iterations: int) -> int:
    return cpu_task(iterations)


def _traced(iterations: int) -> object:
    return pickle.dumps(Traced(cpu_task)(iterations))  # what shipping it back costs included


def _chunked(iterations: int) -> object:
    recorder = Recorder()
    record_cpu_work(iterations, recorder, "task", "wait", max(1, iterations // 5000))
    return pickle.dumps(recorder.recording())


_VARIANTS = {"bare": _bare, "traced": _traced, "chunked": _chunked}


def _cpu_seconds(variant: str, iterations: int) -> float:
    """Run in a worker: the CPU time one task takes there, recording and pickling included."""
    started = time.process_time()
    _VARIANTS[variant](iterations)
    return time.process_time() - started


def _overhead(pool, variant: str, n: int) -> float:
    bare, recorded = [], []
    for _ in range(_PAIRS):
        for name, times in (("bare", bare), (variant, recorded)):
            times += pool.map_async(partial(_cpu_seconds, name), [n, n], chunksize=1).get(120)
    return statistics.median(recorded) / statistics.median(bare)


def _recording_cost_s(calls: int = 2000) -> float:
    """Seconds one traced task spends recording and pickling its span, beyond the task itself."""
    started = time.perf_counter()
    for _ in range(calls):
        _bare(0)
    bare = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        _traced(0)
    return max(0.0, time.perf_counter() - started - bare) / calls


def measure(report) -> None:
    n = iterations_for(_TASK_SECONDS)
    method = "forkserver" if "forkserver" in available_start_methods() else "spawn"
    # multiprocessing.Pool starts both workers at once (ProcessPoolExecutor starts them on
    # demand, and may then give both tasks to one worker), so each task has a core of its own.
    with mp_context(method).Pool(2) as pool:
        pool.map(cpu_task, [1000, 1000])
        side_by_side = _overhead(pool, "traced", n)
        task_seconds = statistics.median(
            pool.map_async(partial(_cpu_seconds, "bare"), [n, n], chunksize=1).get(120))
    cost = _recording_cost_s()
    report("process_recording_cost_per_task", cost * 1e6, "µs (one span, recorded and pickled)")
    report("process_recording_overhead", (task_seconds + cost) / task_seconds,
           "x bare (~1 s task + the recording cost above)", "<= 1.03")
    report("process_recording_side_by_side", side_by_side,
           "x bare (CPU time, 2 processes, ~1 s each; ±5 % noise on this VM)")
    with mp_context(method).Pool(2) as pool:
        pool.map(cpu_task, [1000, 1000])
        report("chunked_recording_overhead", _overhead(pool, "chunked", n),
               "x bare (CPU time, 2 processes, ~1 s each)")

    try:
        from bench.coroutines import pingpong_overhead
    except ImportError:
        pass
    else:
        report("greenlet_trace_overhead", pingpong_overhead(), "x untraced (sleep(0) ping-pong)",
               "<= 1.3")

    from matplotlib.figure import Figure

    events = [Event(f"worker {i % 8}", "t", KINDS[i % 4], i * 1000, i * 1000 + 700, 1, i % 2)
              for i in range(100_000)]
    timings = []
    for _ in range(3):
        fig = Figure(figsize=(11, 5))
        started = time.perf_counter()
        plot_timeline(events, fig.subplots())
        fig.canvas.draw()
        timings.append(time.perf_counter() - started)
    report("plot_100k_spans", statistics.median(timings), "s", "<= 1")
