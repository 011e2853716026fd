"""Foundation figures: what recording a timeline costs, and how fast a big one draws.

- ``process_recording_cost_per_task``: one `Traced` span (recorded and pickled), in µs, and
  ``process_recording_overhead``: what it adds to a ~1 s task (chapters 00/01). Bar: ≤ 1.03.
  ``process_recording_side_by_side`` is the direct check: two processes each run ~1 s of CPU work,
  bare and `Traced`, interleaved; on a shared VM it moves by a few percent either way.
- ``pool_recording_cost_per_span`` and ``pool_recording_overhead_0.2ms_task``: the same at the
  task size of chapter 04's chunksize demo (~0.2 ms), where recording matters most. A span there
  is what a pool worker adds per task — `Traced`'s span, its `TracedResult` pickled in the worker
  and unpickled into the kernel's `Trace` — against the bare task's value pickled and
  unpickled. Bar: ≤ 1.10 (recording adds at most a tenth to the demo's tasks; the chunksize lesson
  is a 2x gap). ``pool_recording_side_by_side_0.2ms`` is `run_pool` against a warm bare
  ``Pool(2).map`` of the same tasks and chunksize (noisy; no bar).
- ``chunked_recording_overhead``: chapter 00's chunked recorder, which splits the work into
  ~0.2 ms chunks to show GIL waits. Not a bar: the price of the finer picture.
- ``plot_100k_spans``: `plot_timeline` on 100,000 spans, drawn to a canvas. Bar: ≤ 1 s.

The greenlet recorder's figures are in ``bench/coroutines.py``.
"""

from __future__ import annotations

import inspect
import pickle
import statistics
import time
from functools import partial

from helpers.chapters.ch00_start_here import record_cpu_work
from helpers.chapters.ch04_pools import compare_chunksizes, task_items
from helpers.course import kernel_safe_start_method, mp_context
from helpers.runners import default_chunksize, run_pool
from helpers.timeline import KINDS, Event, Recorder, Trace, Traced, plot_timeline
from helpers.workloads import cpu_task, iterations_for

__all__ = ["measure"]

# Pairs of (bare, recorded) runs, interleaved so slow drifts hit both sides. Each task is timed
# in its own process by CPU time (`time.process_time`), recording included: on this shared virtual
# machine wall time of the same 1 s task varies by 5-30 % with the neighbours' load, CPU time by
# far less. The figure is the ratio of the medians.
_PAIRS = 7
_TASK_SECONDS = 1.0
# The chunksize demo's own task size (its default), so the two cannot drift apart.
_CHUNK_TASK_MS = inspect.signature(compare_chunksizes).parameters["task_ms"].default
# Calls per timed batch of the per-span cost, and batches: ~0.1 s per batch, the median of 7.
_SPAN_CALLS, _SPAN_BATCHES = 2_000, 7
# The side-by-side pool check: the demo's 1,000 tasks (~0.1 s on 2 workers), 5 pairs.
_POOL_TASKS, _POOL_PAIRS = 1_000, 5


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


def _pool_bare_job(iterations: int, index: int = 0) -> object:
    """A bare pool task's round trip: the value pickled in the worker, unpickled in the kernel."""
    return pickle.loads(pickle.dumps((index, cpu_task(iterations))))


def _pool_traced_job(iterations: int, index: int = 0) -> object:
    """The same with what the chunksize demo's workers record per task (`Traced`, whose one-span
    result `run_pool`'s workers return too): recorded, pickled, unpickled into the run's `Trace`
    (one for all the tasks, as `run_pool` keeps one per run)."""
    _, result = pickle.loads(pickle.dumps((index, _TRACED_TASK(iterations))))
    return _RUN_TRACE.extend(result)


_RUN_TRACE = Trace()


_TRACED_TASK = Traced(cpu_task)


def _extra_seconds(bare, traced, calls: int = _SPAN_CALLS, batches: int = _SPAN_BATCHES) -> float:
    """CPU seconds one `traced(0)` call costs beyond one `bare(0)`: median of timed batches."""
    extra = []
    for _ in range(batches):
        started = time.process_time_ns()
        for _ in range(calls):
            bare(0)
        middle = time.process_time_ns()
        for _ in range(calls):
            traced(0)
        extra.append((time.process_time_ns() - 2 * middle + started) / calls)
    return max(0.0, statistics.median(extra)) / 1e9


def _task_cpu_seconds(iterations: int, calls: int = 500) -> float:
    times = []
    for _ in range(calls):
        started = time.process_time_ns()
        cpu_task(iterations)
        times.append(time.process_time_ns() - started)
    return statistics.median(times) / 1e9


def _pool_side_by_side(items: list[int], method: str) -> float:
    """run_pool's time / a warm bare Pool(2).map's, same tasks and chunksize (median of pairs)."""
    chunksize = default_chunksize(len(items), 2)
    ratios = []
    with mp_context(method).Pool(2) as pool:
        pool.map(cpu_task, [1000, 1000])
        for _ in range(_POOL_PAIRS):
            started = time.perf_counter()
            pool.map_async(cpu_task, items, chunksize=chunksize).get(120)
            bare = time.perf_counter() - started
            traced = run_pool(cpu_task, items, workers=2, chunksize=chunksize,
                              start_method=method).seconds
            ratios.append(traced / bare)
    return statistics.median(ratios)


def measure(report) -> None:
    n = iterations_for(_TASK_SECONDS)
    method = kernel_safe_start_method()
    # multiprocessing.Pool starts both workers at once (ProcessPoolExecutor starts them on
    # demand, and may then give both tasks to one worker), so each task has a core of its own.
    with mp_context(method).Pool(2) as pool:
        pool.map(cpu_task, [1000, 1000])
        side_by_side = _overhead(pool, "traced", n)
        task_seconds = statistics.median(
            pool.map_async(partial(_cpu_seconds, "bare"), [n, n], chunksize=1).get(120))
        chunked = _overhead(pool, "chunked", n)
    cost = _extra_seconds(_bare, _traced)
    report("process_recording_cost_per_task", cost * 1e6, "µs (one span, recorded and pickled)")
    report("process_recording_overhead", (task_seconds + cost) / task_seconds,
           "x bare (~1 s task + the recording cost above)", "<= 1.03",
           baseline="the same task's CPU time untraced, in the same pool")
    report("process_recording_side_by_side", side_by_side,
           "x bare (CPU time, 2 processes, ~1 s each; ±5 % noise on this VM)")
    report("chunked_recording_overhead", chunked, "x bare (CPU time, 2 processes, ~1 s each)")

    items = task_items(_POOL_TASKS, _CHUNK_TASK_MS)
    span = _extra_seconds(_pool_bare_job, _pool_traced_job)
    small_task = _task_cpu_seconds(items[0])
    report("pool_recording_cost_per_span", span * 1e6,
           "µs (recorded, pickled, unpickled into the trace)")
    report("pool_recording_overhead_0.2ms_task", (small_task + span) / small_task,
           f"x bare ({small_task * 1e3:.2f} ms task, the chunksize demo's, + the span above)",
           "<= 1.10", baseline="the same task's CPU time untraced, measured just before")
    report("pool_recording_side_by_side_0.2ms", _pool_side_by_side(items, method),
           f"x a warm bare Pool(2).map ({_POOL_TASKS} tasks of ~{_CHUNK_TASK_MS} ms, wall time)")

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
