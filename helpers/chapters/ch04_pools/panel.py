"""Chapter 04's panel: one pool run, any kind, drawn as a timeline of who ran which task.

    controls (workers, tasks, ms per task, chunksize, kind, start method)
        ──> task_items(tasks, task_ms) ──> helpers.runners.run_pool(cpu_task, items, kind=…)
        ──> plot_timeline(run.trace, ax)  +  pool_summary(run)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from helpers.course import (
    QUICK,
    check_float,
    check_int,
    check_start_methods,
    kernel_safe_start_method,
)
from helpers.runners import POOL_KINDS, Run, run_pool
from helpers.timeline import plot_timeline
from helpers.workloads import MAX_ITERATIONS, cpu_task, iterations_for

__all__ = ["DEFAULT_TASKS", "DEFAULT_TASK_MS", "demo", "make_panel", "pool_summary", "task_items"]

# The most tasks a panel run or a demo builds: far more than any picture shows.
MAX_TASKS = 100_000


def pool_summary(run: Run) -> str:
    """One line about a pool run: tasks, workers, chunksize, times, balance."""
    counts = run.tasks_per_lane()
    return (f"{run.details['kind']}: {len(run.values)} tasks on {run.workers} workers "
            f"({run.start_method}, chunksize {run.details['chunksize'] or 'n/a'}) in "
            f"{run.seconds:.2f} s; pool start {run.details['pool_start_seconds']:.2f} s; "
            f"on average {run.parallelism():.2f} workers computing; "
            f"tasks per worker {sorted(counts.values(), reverse=True)}")


# Tiny tasks show dispatch overhead, big ones the speed-up; beyond 2 s per task a cell gets long.
MIN_TASK_MS, MAX_TASK_MS = 0.05, 2000.0
DEFAULT_TASKS = 40 if QUICK else 200
DEFAULT_TASK_MS = 5.0 if QUICK else 20.0


def task_items(tasks: int, task_ms: float) -> list[int]:
    """`tasks` equal `cpu_task` sizes of about `task_ms` milliseconds each on this machine."""
    check_int("tasks", tasks, 1, MAX_TASKS)
    check_float("task_ms", task_ms, MIN_TASK_MS, MAX_TASK_MS)
    return [min(MAX_ITERATIONS, iterations_for(task_ms / 1e3))] * tasks


def demo(fig, progress, *, workers: int, tasks: int, task_ms: float, chunksize: int,
         kind: str, start_method: str) -> str:
    """Panel demo: one pool run drawn as a timeline; chunksize 0 means "let the pool choose"."""
    progress(0.1, "starting the pool…")
    run = run_pool(cpu_task, task_items(tasks, task_ms), kind=kind, workers=workers,
                   start_method=start_method, chunksize=chunksize or None)
    ax = fig.subplots()
    plot_timeline(run.trace, ax, title=f"{kind}: {tasks} tasks of ~{task_ms:g} ms, "
                                       f"chunksize {run.details['chunksize']}")
    return pool_summary(run)


def make_panel(start_methods: Sequence[str] | None = None):
    """The chapter 04 panel: workers, tasks, task size, chunksize, pool kind, start method."""
    from helpers.widgets import Choice, Float, Int, Panel

    methods = check_start_methods(start_methods)
    default = kernel_safe_start_method()
    return Panel(
        "Pools: who ran which task",
        [Int("workers", 1, max(8, 2 * (os.cpu_count() or 1)), default=2),
         Int("tasks", 1, 2000, default=DEFAULT_TASKS),
         Float("task_ms", 0.1, 200.0, default=DEFAULT_TASK_MS, step=0.1,
               label="ms per task"),
         Int("chunksize", 0, 500, default=0, label="chunksize (0 = pool's choice)"),
         Choice("kind", POOL_KINDS, default="Pool.map"),
         Choice("start_method", methods, default=default if default in methods else methods[0])],
        demo,
    )
