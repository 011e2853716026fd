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

from .views import busy_machine_note, core_seconds, workers_computing

__all__ = ["DEFAULT_TASKS", "DEFAULT_TASK_MS", "LONG_FACTOR", "demo", "make_panel", "pool_summary",
           "task_items", "uneven_items"]

# The most tasks a panel run or a demo builds: far more than any picture shows.
MAX_TASKS = 100_000


def pool_summary(run: Run) -> str:
    """One line about a pool run: tasks, workers, chunksize, times, balance."""
    if not isinstance(run, Run) or "kind" not in run.details:
        raise TypeError(f"run must be a Run from helpers.runners.run_pool, got {run!r:.80}")
    counts = run.tasks_per_lane()
    on_cores = core_seconds(run.trace)  # time on distinct cores: time-slicing counted once
    busy = sorted((on_cores[lane] for lane in counts), reverse=True)
    text = (f"{run.details['kind']}: {len(run.values)} tasks on {run.workers} workers "
            f"({run.start_method}, chunksize {run.details['chunksize'] or 'n/a'}) in "
            f"{run.seconds:.2f} s; pool start {run.details['pool_start_seconds']:.2f} s; "
            f"on average {workers_computing(run.trace, run.seconds):.2f} workers computing; "
            f"tasks per worker {sorted(counts.values(), reverse=True)}, "
            f"seconds of work per worker {[round(b, 2) for b in busy]}")
    note = busy_machine_note()
    return f"{text} {note}" if note else text


# Tiny tasks show dispatch overhead, big ones the speed-up; beyond 2 s per task a cell gets long.
MIN_TASK_MS, MAX_TASK_MS = 0.05, 2000.0
DEFAULT_TASKS = 40 if QUICK else 200
DEFAULT_TASK_MS = 5.0 if QUICK else 20.0


def task_items(tasks: int, task_ms: float) -> list[int]:
    """`tasks` equal `cpu_task` sizes of about `task_ms` milliseconds each on this machine."""
    check_int("tasks", tasks, 1, MAX_TASKS)
    check_float("task_ms", task_ms, MIN_TASK_MS, MAX_TASK_MS)
    return [min(MAX_ITERATIONS, iterations_for(task_ms / 1e3))] * tasks


# A long task is this many times a short one: with a few of them at the end of the list, the
# last chunk of Pool.map's default chunksize holds them all, and one worker gets most of the work.
LONG_FACTOR = 20


def uneven_items(tasks: int, task_ms: float, long_tasks: int) -> list[int]:
    """`tasks` sizes of about `task_ms` each, of which the last `long_tasks` are `LONG_FACTOR`
    times longer: uneven work, clustered at the end, as when a list is sorted by size."""
    check_int("tasks", tasks, 1, MAX_TASKS)
    check_int("long_tasks", long_tasks, 0, tasks)
    short = task_items(tasks, task_ms)
    long_size = min(MAX_ITERATIONS, iterations_for(min(MAX_TASK_MS, LONG_FACTOR * task_ms) / 1e3))
    return short[: tasks - long_tasks] + [long_size] * long_tasks


def demo(fig, progress, *, workers: int, tasks: int, task_ms: float, chunksize: int,
         kind: str, start_method: str, long_tasks: int = 0) -> str:
    """Panel demo: one pool run drawn as a timeline; chunksize 0 means "let the pool choose"."""
    check_int("chunksize", chunksize, 0, MAX_TASKS)
    progress(0.1, "starting the pool…")
    run = run_pool(cpu_task, uneven_items(tasks, task_ms, long_tasks), kind=kind, workers=workers,
                   start_method=start_method, chunksize=chunksize or None)
    ax = fig.subplots()
    longer = f" ({long_tasks} of them {LONG_FACTOR}× longer, at the end)" if long_tasks else ""
    plot_timeline(run.trace, ax, title=f"{kind}: {tasks} tasks of ~{task_ms:g} ms{longer}, "
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
         Int("long_tasks", 0, 20, default=0, label=f"long tasks at the end ({LONG_FACTOR}×)"),
         Choice("kind", POOL_KINDS, default="Pool.map"),
         Choice("start_method", methods, default=default if default in methods else methods[0])],
        demo,
    )
