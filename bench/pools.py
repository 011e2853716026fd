"""Chapter 04 figures: the pool demo's speed-up with timeline recording on, chunksize, and how
long each of the chapters' demo cells takes with its default (reader) parameters.

Speed-ups are the best of several rounds of serial and pool runs alternated in one run, on the
same tasks (what the machine can give: a round a neighbour disturbed is not the code's). A demo
cell that raises is reported as its own MISSED figure (NaN seconds, the error in its unit), so
the other cells are still timed.
"""

from __future__ import annotations

import time
from statistics import median

from matplotlib.figure import Figure

from helpers.chapters.ch01_processes import measure_start_costs, speedup
from helpers.chapters.ch04_pools import (
    DEFAULT_TASK_MS,
    DEFAULT_TASKS,
    compare_chunksizes,
    compare_process_per_task,
    demo,
    measure_amdahl,
    task_items,
)
from helpers.course import kernel_safe_start_method, mp_context, usable_cores
from helpers.runners import run_pool, run_serial
from helpers.workloads import cpu_task

__all__ = ["measure"]

# Interleaved rounds: enough for a best (and a median), few enough to keep `make bench` short.
_REPEATS = 5


def measure(report) -> None:
    method = kernel_safe_start_method()
    items = task_items(12, 150.0)  # the chapter's first demo with reader parameters: 12 × ~0.15 s
    ratios, bare_ratios = [], []
    with mp_context(method).Pool(2) as bare_pool:
        bare_pool.map(cpu_task, [1000, 1000])
        for _ in range(_REPEATS):  # serial, demo, serial, bare Pool(2).map: side by side
            serial = run_serial(cpu_task, [(n,) for n in items]).seconds
            demo_run = run_pool(cpu_task, items, workers=2, start_method=method)
            ratios.append(serial / demo_run.seconds)
            serial = run_serial(cpu_task, [(n,) for n in items]).seconds
            started = time.perf_counter()
            bare_pool.map_async(cpu_task, items, chunksize=1).get(120)
            bare_ratios.append(serial / (time.perf_counter() - started))
    cores = usable_cores()
    report("pool_speedup_2_workers", max(ratios),
           f"x serial ({cores} cores, traced, best of {_REPEATS} rounds)", ">= 1.85",
           baseline="run_serial of the same tasks, just before the demo's run in each round")
    report("bare_pool_speedup_2_workers", max(bare_ratios),
           "x serial (a warm bare Pool(2).map of the same tasks, untraced, best round)")
    report("pool_demo_vs_bare_pool", median(ratios) / median(bare_ratios),
           "x the bare pool's speed-up (medians: the demo starts its pool and records every "
           "task)")

    chunk = []
    for _ in range(3):
        one, chosen = compare_chunksizes(1000, 0.2, workers=2, start_method=method).runs
        chunk.append(one.seconds / chosen.seconds)
    report("chunksize_1_vs_default", median(chunk), "x default chunksize (median of 3)", "> 1",
           baseline="the same tasks with the default chunksize, in the same comparison")

    per_task = compare_process_per_task(40, 5.0, workers=2, start_method=method)
    report("process_per_task_vs_pool", per_task.per_task_seconds / per_task.pool_seconds,
           "x pool time")

    # Each demo cell with its default (reader) parameters.
    cells = {
        "cell_01_compare_speedup": lambda: speedup.compare_speedup(
            2, speedup.DEFAULT_TASK_SECONDS, start_method=method),
        "cell_01_scaling": lambda: speedup.measure_scaling(start_method=method,
                                                           total_seconds=1.0),
        "cell_01_start_costs": lambda: measure_start_costs(samples=10),
        "cell_01_panel": lambda: speedup.demo(Figure(), lambda *a: None, processes=2,
                                              task_seconds=speedup.DEFAULT_TASK_SECONDS,
                                              start_method=method),
        "cell_04_panel": lambda: demo(Figure(), lambda *a: None, workers=2,
                                      tasks=DEFAULT_TASKS, task_ms=DEFAULT_TASK_MS, chunksize=0,
                                      kind="Pool.map", start_method=method),
        "cell_04_chunksize": lambda: compare_chunksizes(1000, 0.2, start_method=method),
        "cell_04_amdahl": lambda: measure_amdahl(start_method=method),
    }
    for name, cell in cells.items():
        started = time.perf_counter()
        try:
            cell()
        except Exception as exc:  # one broken demo must not hide the others' timings
            report(name, float("nan"), f"s (raised {type(exc).__name__}: {exc})", "<= 10")
            continue
        report(name, time.perf_counter() - started, "s (reader defaults)", "<= 10")
