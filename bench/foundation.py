"""Foundation figures: what recording a timeline costs, and how fast a big one draws.

- ``process_recording_overhead``: two processes each run ~1 s of CPU work, bare and wrapped in
  `Traced` (one span per task), side by side; the ratio of the medians. Bar: ≤ 1.03.
- ``chunked_recording_overhead``: the same with chapter 00's chunked recorder, which splits the work
  into ~0.2 ms chunks to show GIL waits. Not a bar: the price of the finer picture.
- ``greenlet_trace_overhead``: see ``bench/coroutines.py`` (the switching benchmark). Bar: ≤ 1.3.
- ``plot_100k_spans``: `plot_timeline` on 100,000 spans, drawn to a canvas. Bar: ≤ 1 s.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from helpers.course import available_start_methods, mp_context
from helpers.gil import record_cpu_work
from helpers.timeline import KINDS, Event, Recorder, Traced, plot_timeline
from helpers.workloads import cpu_task, iterations_for

# Pairs of (bare, recorded) runs: interleaving them cancels slow drifts (thermal, other load), and
# the median of 5 ignores a one-off hiccup.
_PAIRS = 5
_TASK_SECONDS = 1.0


def _chunked(iterations: int) -> int:
    recorder = Recorder()
    return record_cpu_work(iterations, recorder, "task", "wait", max(1, iterations // 5000))


def _timed_map(pool, fn, args) -> float:
    started = time.perf_counter()
    list(pool.map(fn, args, timeout=120))
    return time.perf_counter() - started


def _overhead(pool, recorded_fn, n: int) -> float:
    ratios = []
    for _ in range(_PAIRS):
        bare = _timed_map(pool, cpu_task, [n, n])
        recorded = _timed_map(pool, recorded_fn, [n, n])
        ratios.append(recorded / bare)
    return statistics.median(ratios)


def measure(report) -> None:
    n = iterations_for(_TASK_SECONDS)
    method = "forkserver" if "forkserver" in available_start_methods() else "spawn"
    with ProcessPoolExecutor(2, mp_context=mp_context(method)) as pool:
        _timed_map(pool, cpu_task, [1000, 1000])  # start the workers before timing
        report("process_recording_overhead", _overhead(pool, Traced(cpu_task), n),
               "x bare (2 processes, ~1 s each)", "<= 1.03")
        report("chunked_recording_overhead", _overhead(pool, _chunked, n),
               "x bare (2 processes, ~1 s each)")

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
