"""The matrix: every workload run by every model, each cell a measured speed-up and memory figure.

Data flow of `measure_matrix`::

    for each workload (row):
        tasks = workload.make(size, count)                 the same tasks for every model
        measure_row(workload, tasks, models):
            compare(models, workload.blocking, tasks,      helpers.runners: one comparison
                    forms={model: workload.fn_for(model)},  the task in each model's form
                    around=MemorySampler)                   the kernel and its children, 20 ms
              └─> Comparison: each model's Run, the seconds of its whole call, its speed-up
            Cell(seconds, speedup, memory = peak − before, run) per model
    Matrix(cells) ──> plot_matrix(ax)          the heat map (colour: log speed-up)
                  ──> plot_cell(cell, ax)      that cell's timeline
                  ──> best(workload)           what the decision guide is built from

A cell's time and speed-up are `compare`'s, the ones chapters 00 and 01 show: the whole call, as a
program pays it (processes, pools and their workers are started inside it). One process per task
for ``processes``, so beyond 64 tasks that cell is not run, and the cell says so. A run with a
failed task gets no speed-up (`Cell.note` says why). Memory is the sum over the kernel and its
child processes of the memory only they use (USS on Linux and macOS, else RSS), its peak during
the run minus its value just before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers.course import (
    check_callable,
    check_choice,
    check_float,
    check_int,
    check_start_method,
)
from helpers.runners import MAX_PROCESSES, Run, compare
from helpers.runners.contract import check_tasks

from .workloads import WORKLOADS

__all__ = ["MODELS", "Cell", "Matrix", "MemorySampler", "machine_note", "measure_matrix",
           "measure_row", "plot_cell", "plot_matrix"]

MODELS = ("serial", "threads", "processes", "pool", "gevent", "asyncio", "gevent-in-processes")
# Sampling period of the memory sampler: often enough to catch a run of a tenth of a second,
# rarely enough that sampling (a /proc read per process) costs under 1 % of a core.
_SAMPLE_SECONDS = 0.02
# One thread per task in the threads model: the lead runner's bound.
_MAX_THREADS = 1_000
# The sampler's last reading takes a few /proc reads; a thread stuck longer than this is dropped.
_JOIN_SECONDS = 5.0
# Lanes drawn for one cell's timeline: more are unreadable on one screen; the title says how many.
_MAX_LANES = 24


class MemorySampler:
    """Peak memory of this process and its children while the block runs, minus before.

    >>> with MemorySampler() as memory:
    ...     block = bytearray(50 << 20)
    >>> memory.peak_mb > 0
    True
    """

    def __init__(self, period: float = _SAMPLE_SECONDS) -> None:
        import psutil

        check_float("period", period, 0.001, 10.0)
        self._psutil = psutil
        self._me = psutil.Process()
        self._period = period
        self._stop = threading.Event()
        self._peak = 0
        self.before = self._total()

    def _one(self, process) -> int:
        try:
            return process.memory_full_info().uss
        except (self._psutil.AccessDenied, AttributeError, NotImplementedError):
            return process.memory_info().rss

    def _total(self) -> int:
        total = 0
        for process in [self._me, *self._me.children(recursive=True)]:
            try:
                total += self._one(process)
            except self._psutil.Error:  # it exited between the listing and the reading
                pass
        return total

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            self._peak = max(self._peak, self._total())

    def __enter__(self) -> MemorySampler:
        self._peak = self.before
        self._thread = threading.Thread(target=self._loop, name="memory sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(_JOIN_SECONDS)
        self._peak = max(self._peak, self._total())

    @property
    def peak_mb(self) -> float:
        return max(0, self._peak - self.before) / 2**20


def _limit(model: str, tasks: int) -> str | None:
    """Why `model` is not run on `tasks` tasks, or None when it is."""
    if model == "processes" and tasks > MAX_PROCESSES:
        return f"not run: one process per task, and {tasks} > {MAX_PROCESSES} processes"
    if model == "threads" and tasks > _MAX_THREADS:
        return f"not run: one thread per task, and {tasks} > {_MAX_THREADS} threads"
    return None


@dataclass
class Cell:
    """One measurement: `model` on `workload`. ``run`` is None when the cell was not run."""

    workload: str
    model: str
    seconds: float | None
    memory_mb: float | None
    run: Run | None
    speedup: float | None = None
    note: str = ""


def measure_row(workload: str, tasks: Sequence[tuple], models: Sequence[str] = MODELS, *,
                workers: int = 2, start_method: str | None = None,
                progress: Callable[[float, str], None] | None = None) -> dict[str, Cell]:
    """Every one of `models` on the same `tasks` of `workload`, serial first (the baseline):
    one `compare`, each model running the task in its own form, its memory sampled."""
    spec = WORKLOADS[check_choice("workload", workload, list(WORKLOADS))]
    models = ["serial", *(m for m in _names("models", models, list(MODELS)) if m != "serial")]
    tasks = check_tasks(tasks)
    not_run = {model: why for model in models if (why := _limit(model, len(tasks)))}
    ran = [model for model in models if model not in not_run]
    comparison = compare(ran, spec.blocking, tasks, forms={m: spec.fn_for(m) for m in ran},
                         workers=check_int("workers", workers, 1, MAX_PROCESSES),
                         start_method=start_method, around=MemorySampler, progress=progress)
    cells = {}
    for model in models:
        if model in not_run:
            cells[model] = Cell(workload, model, None, None, None, note=not_run[model])
            continue
        cells[model] = Cell(workload, model, comparison.time_of(model),
                            comparison.measured[model].peak_mb, comparison.runs[model],
                            comparison.speedup(model), comparison.failure_note(model))
    return cells


@dataclass
class Matrix:
    """Every measured cell, by (workload, model); rows and columns in the order measured."""

    workloads: list[str]
    models: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    sizes: dict[str, tuple[float, int]] = field(default_factory=dict)
    workers: int = 2

    def merge(self, other: Matrix) -> Matrix:
        """This matrix with the rows of `other` added (measured with the same models)."""
        if other.models != self.models:
            raise ValueError(f"other must have the same models {self.models}, got {other.models}")
        merged = Matrix(self.workloads + [w for w in other.workloads if w not in self.workloads],
                        list(self.models), {**self.cells, **other.cells},
                        {**self.sizes, **other.sizes}, self.workers)
        return merged

    def cell(self, workload: str, model: str) -> Cell:
        return self.cells[(workload, model)]

    def best(self, workload: str) -> Cell:
        """The fastest cell of a row that ran without failures."""
        ran = [c for (w, _), c in self.cells.items() if w == workload and c.speedup is not None]
        return max(ran, key=lambda c: c.speedup)

    def speedups(self) -> list[list[float | None]]:
        return [[self.cells[(w, m)].speedup for m in self.models] for w in self.workloads]

    def table(self) -> str:
        """The matrix as text: speed-up and memory per cell."""
        width = max(len(w) for w in self.workloads)
        lines = [" " * width + "".join(f"{m:>21}" for m in self.models)]
        for w in self.workloads:
            row = []
            for m in self.models:
                c = self.cells[(w, m)]
                row.append(f"{'—':>21}" if c.speedup is None else
                           f"{c.speedup:>9.2f}× {c.memory_mb:>7.1f} MB ")
            lines.append(f"{w:>{width}}" + "".join(row))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _names(what: str, given: Sequence[str] | None, known: list[str]) -> list[str]:
    """`given` (None: all of `known`) as a list, every entry one of `known`."""
    if given is None:
        return list(known)
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence) or not given or \
            any(name not in known for name in given):
        raise ValueError(f"{what} must be a non-empty list drawn from {', '.join(known)}, "
                         f"got {given!r}")
    return list(given)


def measure_matrix(workloads: Sequence[str] | None = None, models: Sequence[str] | None = None,
                   *, sizes: dict[str, tuple[float, int]] | None = None, workers: int = 2,
                   start_method: str | None = None,
                   progress: Callable[[float, str], None] | None = None) -> Matrix:
    """Every model on the same tasks of each workload. `sizes` maps a workload to ``(size,
    tasks)`` (default: its own). Serial runs first: it is the baseline of its row."""
    matrix = _empty_matrix(workloads, models, sizes, workers)  # every parameter checked
    start_method = check_start_method(start_method)
    if progress is not None:
        check_callable("progress", progress)
    rows = len(matrix.workloads)
    for row, name in enumerate(matrix.workloads):
        tasks = WORKLOADS[name].make(*matrix.sizes[name])  # the same tasks for every model

        def told(fraction: float, text: str, row: int = row, name: str = name) -> None:
            progress((row + fraction) / rows, f"{name}: {text}")

        cells = measure_row(name, tasks, matrix.models, workers=workers,
                            start_method=start_method,
                            progress=None if progress is None else told)
        matrix.cells.update({(name, model): cell for model, cell in cells.items()})
    if progress is not None:
        progress(1.0, "done")
    return matrix


def _empty_matrix(workloads: Sequence[str] | None, models: Sequence[str] | None,
                  sizes: dict[str, tuple[float, int]] | None, workers: int) -> Matrix:
    """A matrix with its rows, columns (serial first) and sizes chosen, every one checked."""
    names = _names("workloads", workloads, list(WORKLOADS))
    chosen = [m for m in _names("models", models, list(MODELS)) if m != "serial"]
    check_int("workers", workers, 1, MAX_PROCESSES)
    if sizes is not None and (not isinstance(sizes, dict) or set(sizes) - set(WORKLOADS)):
        raise ValueError(f"sizes must be a dict from workload names to (size, tasks), "
                         f"got {sizes!r}")
    matrix = Matrix(names, ["serial", *chosen], workers=workers)
    for name in names:
        workload = WORKLOADS[name]
        size, count = (sizes or {}).get(name, (workload.default_ms, workload.default_tasks))
        check_float(f"size of {name}", size, 0.001, 10_000.0)
        check_int(f"tasks of {name}", count, 1, 100_000)
        matrix.sizes[name] = (size, count)
    return matrix


def plot_matrix(matrix: Matrix, ax, *, cmap: str = "RdYlGn") -> list:
    """The heat map: colour = speed-up on a log scale (red slower than serial, green faster);
    each cell's text its speed-up and memory. Returns the artists."""
    import numpy as np
    from matplotlib.colors import LogNorm

    values = np.array([[np.nan if s is None else s for s in row] for row in matrix.speedups()],
                      dtype=float)
    finite = values[np.isfinite(values)]
    # Symmetric on a log scale, so 1× is the middle colour: at least 1/10 to 10, at most 1/1000.
    decades = float(np.max(np.abs(np.log10(finite)))) if finite.size else 1.0
    span = 10 ** min(max(decades, 1.0), 3.0)
    image = ax.imshow(values, cmap=cmap, norm=LogNorm(vmin=1 / span, vmax=span), aspect="auto")
    artists: list[Any] = [image]
    for i, workload in enumerate(matrix.workloads):
        for j, model in enumerate(matrix.models):
            cell = matrix.cell(workload, model)
            if cell.speedup is None:
                text = "not run" if cell.run is None else "failed"
            else:
                text = f"{cell.speedup:.2g}×\n{cell.memory_mb:.0f} MB"
            # White on the darkest colours (far from 1× either way), black elsewhere.
            dark = cell.speedup is not None and \
                abs(np.log10(cell.speedup)) > 0.7 * np.log10(span)
            artists.append(ax.text(j, i, text, ha="center", va="center", fontsize=10,
                                   color="white" if dark else "black"))
    ax.set_xticks(range(len(matrix.models)),
                  [m.replace("-in-", "\nin ") for m in matrix.models], fontsize=10)
    labels = [f"{w}\n{_size_text(w, matrix)}" for w in matrix.workloads]
    ax.set_yticks(range(len(matrix.workloads)), labels, fontsize=10)
    ax.set_title(f"speed-up over serial (and memory used), {matrix.workers} workers for "
                 "pool models", fontsize=12)
    return artists


def _size_text(workload: str, matrix: Matrix) -> str:
    size, count = matrix.sizes[workload]
    return f"{count} × {size:g} {WORKLOADS[workload].unit}"


def plot_cell(cell: Cell, ax) -> list:
    """That cell's timeline: its first 24 lanes (the title says how many there were)."""
    from helpers.timeline import plot_timeline

    if cell.run is None:
        ax.set_axis_off()
        return [ax.text(0.5, 0.5, f"{cell.model} on {cell.workload}: {cell.note}",
                        ha="center", va="center", transform=ax.transAxes, fontsize=12)]
    lanes = cell.run.trace.lanes()
    title = f"{cell.model} on {cell.workload}: {cell.seconds * 1000:.0f} ms"
    if cell.speedup is not None:
        title += f", {cell.speedup:.2f}× serial"
    if len(lanes) > _MAX_LANES:
        title += f" (first {_MAX_LANES} of {len(lanes)} lanes)"
    return list(plot_timeline(cell.run.trace, ax, title=title, lanes=lanes[:_MAX_LANES]))


def machine_note() -> str:
    """What the figures depend on: cores this process may use, and the load on them now."""
    from helpers.course import usable_cores

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    text = f"{usable_cores()} usable cores"
    if load is not None:
        text += f", load average {load:.1f}"
        if load > usable_cores():
            text += (" — more runnable processes than cores: other programs compete with every"
                     " run, so the figures are noisy (measure again when the machine is idle)")
    return text
