"""Chapter 01's main demo: the same CPU-bound work serially, in threads and in processes.

Data flow::

    task_seconds ──iterations_for──> iterations per task (calibrated on this machine)
         │
         ├─ run_serial(cpu_task, tasks)       the kernel, one task after the other  ┐
         ├─ run_threads(cpu_task, tasks)      threads of the kernel (one GIL)       ├─> Comparison
         └─ run_processes(cpu_task, tasks)    one process per task, on real cores   ┘
                                                      │
                     plot_comparison(comparison, ax_timeline, ax_bars) <─┘
                     (process lanes coloured by the core they ran on)

`measure_scaling` runs a fixed amount of work split over 1, 2, … N processes, past the number of
cores, to show where adding processes stops helping (oversubscription).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .course import (
    QUICK,
    available_start_methods,
    check_choice,
    check_float,
    check_int,
    usable_cores,
)
from .processes import MAX_PROCESSES, ProcessRun, run_processes, run_serial, run_threads
from .timeline import plot_timeline
from .workloads import cpu_task, iterations_for

__all__ = [
    "Comparison",
    "Scaling",
    "compare_models",
    "demo",
    "make_panel",
    "measure_scaling",
    "plot_comparison",
    "plot_scaling",
    "usable_cores",
]

# A task shorter than this is mostly start cost (spawn ≈ 50–100 ms per process), which would hide
# the speed-up; longer than this and one demo cell outgrows the 10 s a reader waits happily.
MIN_TASK_SECONDS, MAX_TASK_SECONDS = 0.01, 5.0
# The panel's default: long enough that start cost is small next to the work on every start method.
DEFAULT_TASK_SECONDS = 0.15 if QUICK else 0.8
_MODEL_COLORS = {"serial": "#999999", "threads": "#E69F00", "processes": "#0072B2"}

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, text: str | None = None) -> None:
    return None


@dataclass
class Comparison:
    """Serial, threads and processes on the same tasks."""

    serial: ProcessRun
    threads: ProcessRun
    processes: ProcessRun
    start_method: str

    @property
    def runs(self) -> list[ProcessRun]:
        return [self.serial, self.threads, self.processes]

    def speedup(self, model: str) -> float:
        """How many times faster than serial `model` ("threads" or "processes") was."""
        run = {r.model: r for r in self.runs}[model]
        return self.serial.seconds / run.seconds

    def summary(self) -> str:
        tasks = len(self.processes.values)
        return (f"{tasks} tasks: serial {self.serial.seconds:.2f} s, "
                f"threads {self.threads.seconds:.2f} s ({self.speedup('threads'):.2f}×), "
                f"{tasks} processes ({self.start_method}) {self.processes.seconds:.2f} s "
                f"({self.speedup('processes'):.2f}×) on {usable_cores()} cores")


def compare_models(processes: int = 2, task_seconds: float = DEFAULT_TASK_SECONDS, *,
                   start_method: str, progress: Progress = _no_progress) -> Comparison:
    """Run `processes` equal CPU tasks serially, in as many threads, and in as many processes."""
    check_int("processes", processes, 1, MAX_PROCESSES)
    check_float("task_seconds", task_seconds, MIN_TASK_SECONDS, MAX_TASK_SECONDS)
    check_choice("start_method", start_method, available_start_methods())
    tasks = [(iterations_for(task_seconds),)] * processes
    progress(0.05, "serial…")
    serial = run_serial(cpu_task, tasks)
    progress(0.4, "threads…")
    threads = run_threads(cpu_task, tasks)
    progress(0.75, "processes…")
    in_processes = run_processes(cpu_task, tasks, start_method=start_method)
    progress(1.0)
    return Comparison(serial, threads, in_processes, start_method)


def plot_comparison(comparison: Comparison, ax_timeline, ax_bars=None) -> list:
    """The processes' timeline coloured by core, and (if `ax_bars`) the three wall times.

    Each lane's "start" span (from ``start()`` in the kernel to the child's first line) is drawn
    hatched on top of its core colour, so the start cost stays visible when colour means core.
    """
    trace = comparison.processes.trace
    artists = plot_timeline(trace, ax_timeline, color_by="cpu",
                            title=f"{len(comparison.processes.values)} processes "
                                  f"({comparison.start_method}): which core ran what")
    artists += _hatch_starts(trace, ax_timeline)
    if ax_bars is not None:
        models = [r.model for r in comparison.runs]
        seconds = [r.seconds for r in comparison.runs]
        artists.append(ax_bars.barh(models, seconds,
                                    color=[_MODEL_COLORS[m] for m in models]))
        for row, run in enumerate(comparison.runs):
            text = f" {run.seconds:.2f} s"
            if run.model != "serial":
                text += f"  {comparison.speedup(run.model):.2f}×"
            artists.append(ax_bars.text(run.seconds, row, text, va="center", fontsize=11))
        ax_bars.invert_yaxis()
        ax_bars.set_xlim(0, max(seconds) * 1.6)
        ax_bars.set_xlabel("wall time (s)", fontsize=12)
        ax_bars.set_title("same work", fontsize=13)
    return artists


def _hatch_starts(trace, ax) -> list:
    """Hatch each lane's "start" span over the drawn timeline and add it to the legend."""
    from matplotlib.patches import Patch

    starts = trace.select(kind="start")
    if not starts:
        return []
    lanes, origin = trace.lanes(), trace.start_ns
    artists = [ax.broken_barh([((e.start_ns - origin) / 1e6, (e.end_ns - e.start_ns) / 1e6)
                               for e in starts if e.lane == lane],
                              (row - 0.4, 0.8), facecolors="none", edgecolors="white",
                              hatch="///", linewidth=0)
               for row, lane in enumerate(lanes)]
    if ax.get_legend() is not None:  # redraw the legend with a "starting" entry
        handles, names = ax.get_legend_handles_labels()
        handles.append(Patch(facecolor="#999999", edgecolor="white", hatch="///", linewidth=0))
        names.append("starting: start() → first line")
        artists.append(ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                                 fontsize=11, frameon=False))
    return artists


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
                    start_method: str, progress: Progress = _no_progress) -> Scaling:
    """Split `total_seconds` of work over 1, 2, … `max_processes` processes (default 2× cores)."""
    cores = usable_cores()
    max_processes = 2 * cores if max_processes is None else max_processes
    check_int("max_processes", max_processes, 1, MAX_PROCESSES)
    check_float("total_seconds", total_seconds, MIN_TASK_SECONDS, 4 * MAX_TASK_SECONDS)
    total = iterations_for(total_seconds)
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
    comparison = compare_models(processes, task_seconds, start_method=start_method,
                                progress=progress)
    ax_timeline, ax_bars = fig.subplots(1, 2, width_ratios=[3, 1])
    plot_comparison(comparison, ax_timeline, ax_bars)
    return comparison.summary()


def make_panel(start_methods: Sequence[str] | None = None):
    """The chapter 01 panel: number of processes, task size (calibrated), start method."""
    from .processes import kernel_safe_start_method
    from .widgets import Choice, Float, Int, Panel

    methods = list(start_methods) if start_methods is not None else available_start_methods()
    default = kernel_safe_start_method()
    return Panel(
        "Processes on real cores",
        [Int("processes", 1, max(8, 2 * usable_cores()), default=min(2, MAX_PROCESSES)),
         Float("task_seconds", MIN_TASK_SECONDS, 2.0, default=DEFAULT_TASK_SECONDS, step=0.05,
               label="seconds of work per task"),
         Choice("start_method", methods, default=default if default in methods else methods[0])],
        demo,
    )
