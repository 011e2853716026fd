"""Chapter 09's panel: chapter 04's workload on a fresh LocalCluster, drawn from the task stream.

    controls (workers, threads per worker, tasks, ms per task)
        ──> run_dask(cpu_task, sizes, workers=…, threads_per_worker=…)   cluster start included
        ──> plot_timeline(run.trace, ax)  (one lane per worker thread)
"""

from __future__ import annotations

from helpers.course import usable_cores
from helpers.runners.dask import run_dask
from helpers.timeline import plot_timeline
from helpers.widgets import Float, Int, Panel
from helpers.workloads import cpu_task, iterations_for

__all__ = ["make_panel"]

# The most serial work one panel run may hold: with the cluster's start, a run stays short.
_MAX_WORK_MS = 8_000.0


def _demo(fig, progress, *, workers: int, threads: int, tasks: int, task_ms: float) -> str:
    if tasks * task_ms > _MAX_WORK_MS:
        raise ValueError(f"tasks × task_ms must be at most {_MAX_WORK_MS:g} ms of work, got "
                         f"{tasks} × {task_ms:g} = {tasks * task_ms:g} ms")
    progress(0.1, "starting the cluster…")
    run = run_dask(cpu_task, [(iterations_for(task_ms / 1e3),)] * tasks, workers=workers,
                   threads_per_worker=threads)
    ax = fig.subplots()
    plot_timeline(run.trace, ax, title=f"{tasks} tasks of ~{task_ms:g} ms on {workers} "
                  f"{_plural(workers, 'worker')} × {threads} {_plural(threads, 'thread')}")
    # cpu_task is pure Python: the threads of one worker share its GIL, so at most one task per
    # worker computes at once, and no more than there are cores.
    at_once = min(workers, usable_cores())
    ideal = tasks * task_ms / 1e3 / at_once
    return (f"{run.seconds:.2f} s for the tasks (at best about {ideal:.2f} s: {at_once} at a "
            f"time, one per worker and core), after {run.details['cluster_start_seconds']:.2f} s "
            f"starting the cluster; on average {run.parallelism():.2f} lanes computing")


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"

def make_panel() -> Panel:
    """Workers, threads per worker, tasks and task size, on a LocalCluster started per run."""
    return Panel(
        "Chapter 04's workload on a Dask LocalCluster",
        [Int("workers", 1, 4, default=2), Int("threads", 1, 4, default=1,
                                               label="threads per worker"),
         Int("tasks", 1, 64, default=16), Float("task_ms", 1.0, 500.0, default=100.0, step=1.0,
                                                 label="ms per task")],
        _demo,
    )
