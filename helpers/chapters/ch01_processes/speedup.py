"""Chapter 01's main demo: the same CPU-bound work serially, in threads and in processes.

Data flow::

    task_seconds ──iterations_for──> iterations per task (calibrated on this machine)
         │
    compare(["serial", "threads", "processes"], cpu_task, tasks)   (helpers.runners)
         ├─ serial      the kernel, one task after the other  ┐
         ├─ threads     threads of the kernel (one GIL)       ├─> Comparison
         └─ processes   one process per task, on real cores   ┘
                                                      │
       plot_comparison(c, [ax], ax_bars, models=["processes"], color_by="cpu") <─┘
       (process lanes coloured by the core they ran on, each start hatched)

`measure_scaling` runs a fixed amount of work split over 1, 2, … N processes, past the number of
cores, to show where adding processes stops helping (oversubscription).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from helpers.course import (
    QUICK,
    check_callable,
    check_float,
    check_int,
    check_start_method,
    check_start_methods,
    kernel_safe_start_method,
    one_core_note,
    usable_cores,
)
from helpers.runners import (
    MAX_PROCESSES,
    Comparison,
    compare,
    plot_comparison,
    run_processes,
    run_serial,
)
from helpers.workloads import cpu_task, iterations_for

__all__ = [
    "MODELS",
    "Scaling",
    "busy_note",
    "compare_speedup",
    "demo",
    "make_panel",
    "measure_scaling",
    "plot_scaling",
    "speedup_tasks",
]

MODELS = ("serial", "threads", "processes")
# A task shorter than this is mostly start cost (spawn ≈ 50–100 ms per process), which would hide
# the speed-up; longer than this and one demo cell outgrows the 10 s a reader waits happily.
MIN_TASK_SECONDS, MAX_TASK_SECONDS = 0.01, 5.0
# The panel's default: long enough that start cost is small next to the work on every start method.
DEFAULT_TASK_SECONDS = 0.15 if QUICK else 0.5

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, text: str | None = None) -> None:
    return None


def busy_note() -> str:
    """A line about what limits the speed-up on this machine, or "" when nothing does.

    One core (the affinity mask gives the course one, as ``taskset -c 0`` does): processes take
    turns on it, whatever the load. Several cores but a load average above them: every figure
    here measures the other programs' share of the cores too (threads can even beat serial,
    because the two runs got different shares).
    """
    cores = usable_cores()
    if cores == 1:
        return one_core_note("processes take turns on it and cannot beat serial here",
                             "two processes would take about half the serial time", cores=1)
    if not hasattr(os, "getloadavg"):
        return ""
    load = os.getloadavg()[0]
    if load <= cores:
        return ""
    return (f"(the machine is busy: load average {load:.1f} on {cores} cores, so these times "
            "include waiting for a core; run the cell again when it is quieter)")


def speedup_tasks(processes: int = 2, task_seconds: float = DEFAULT_TASK_SECONDS) -> list[tuple]:
    """`processes` equal `cpu_task` argument tuples of about `task_seconds` each, here."""
    check_int("processes", processes, 1, MAX_PROCESSES)
    check_float("task_seconds", task_seconds, MIN_TASK_SECONDS, MAX_TASK_SECONDS)
    return [(iterations_for(task_seconds),)] * processes


def compare_speedup(processes: int = 2, task_seconds: float = DEFAULT_TASK_SECONDS, *,
                    start_method: str | None = None,
                    progress: Progress | None = None) -> Comparison:
    """``compare(MODELS, cpu_task, speedup_tasks(processes, task_seconds))``: the chapter's demo."""
    if progress is not None:
        check_callable("progress", progress)
    return compare(MODELS, cpu_task, speedup_tasks(processes, task_seconds),
                   start_method=check_start_method(start_method), progress=progress)


@dataclass
class Scaling:
    """Wall time of a fixed amount of work split over 1…N processes."""

    counts: list[int]
    seconds: list[float]
    serial_seconds: float
    cores: int
    start_method: str

    @property
    def speedups(self) -> list[float]:
        return [self.serial_seconds / s for s in self.seconds]

    def best_count(self, tolerance: float = 0.1) -> int:
        """The fewest processes within `tolerance` of the best time: more do not help."""
        best = min(self.seconds)
        return min(c for c, s in zip(self.counts, self.seconds) if s <= best * (1 + tolerance))


def measure_scaling(max_processes: int | None = None, total_seconds: float = 1.0, *,
                    start_method: str | None = None,
                    progress: Progress | None = None) -> Scaling:
    """Split `total_seconds` of work over 1, 2, … `max_processes` processes (default 2× cores)."""
    start_method = check_start_method(start_method)
    if progress is not None:
        check_callable("progress", progress)
    cores = usable_cores()
    max_processes = 2 * cores if max_processes is None else max_processes
    check_int("max_processes", max_processes, 1, MAX_PROCESSES)
    check_float("total_seconds", total_seconds, MIN_TASK_SECONDS, 4 * MAX_TASK_SECONDS)
    total = iterations_for(total_seconds)
    progress = progress or _no_progress
    progress(0.0, "serial…")
    serial = run_serial(cpu_task, [(total,)])
    counts, seconds = list(range(1, max_processes + 1)), []
    for count in counts:
        progress(count / (max_processes + 1), f"{count} processes…")
        run = run_processes(cpu_task, [(part,) for part in _split(total, count)],
                            start_method=start_method)
        seconds.append(run.seconds)
    progress(1.0)
    return Scaling(counts, seconds, serial.seconds, cores, start_method)


def _split(total: int, parts: int) -> list[int]:
    """`total` iterations in `parts` near-equal shares (they differ by at most one)."""
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


def plot_scaling(scaling: Scaling, ax) -> list:
    """Measured speed-up per process count, the ideal line up to the cores, and the core count."""
    ideal = [min(c, scaling.cores) for c in scaling.counts]
    artists = [
        ax.plot(scaling.counts, ideal, "--", color="#999999",
                label="ideal: min(processes, cores)")[0],
        ax.plot(scaling.counts, scaling.speedups, "o-", color="#0072B2", lw=2,
                label=f"measured ({scaling.start_method})")[0],
        ax.axvline(scaling.cores, color="#D55E00", alpha=0.6, label=f"{scaling.cores} cores"),
    ]
    ax.set_xlabel("processes sharing the same total work", fontsize=12)
    ax.set_ylabel("speed-up over serial", fontsize=12)
    ax.set_xticks(scaling.counts)
    ax.set_ylim(0, max(max(scaling.speedups), scaling.cores) * 1.2)
    ax.grid(alpha=0.3)
    artists.append(ax.legend(frameon=False, loc="lower right"))
    return artists


def demo(fig, progress: Progress, *, processes: int, task_seconds: float,
         start_method: str) -> str:
    """The chapter's panel demo: compare the three models and draw the processes' cores."""
    comparison = compare_speedup(processes, task_seconds, start_method=start_method,
                                 progress=progress)
    ax_timeline, ax_bars = fig.subplots(1, 2, width_ratios=[3, 1])
    plot_comparison(comparison, [ax_timeline], ax_bars, models=["processes"], color_by="cpu")
    return " ".join(filter(None, [comparison.summary(), busy_note()]))


def make_panel(start_methods: Sequence[str] | None = None):
    """The chapter 01 panel: number of processes, task size (calibrated), start method."""
    from helpers.widgets import Choice, Float, Int, Panel

    methods = check_start_methods(start_methods)
    default = kernel_safe_start_method()
    return Panel(
        "Processes on real cores",
        [Int("processes", 1, max(8, 2 * usable_cores()), default=min(2, MAX_PROCESSES)),
         Float("task_seconds", MIN_TASK_SECONDS, 2.0, default=DEFAULT_TASK_SECONDS, step=0.05,
               label="seconds of work per task"),
         Choice("start_method", methods, default=default if default in methods else methods[0])],
        demo,
    )
