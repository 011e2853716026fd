"""What the reader sees of the matrix: the heat map with a cell picker, the decision guide drawn
from the measurements, and the chapter's panel.

    Matrix ──> CellPicker(matrix)    a dropdown of cells: choosing one redraws that cell's
                                     timeline under it (an Image widget, redrawn in place)
           ──> guide(matrix)         one row per workload: the measured best, what else is close,
                                     what is slower than serial, and the chapter that shows why
    make_panel()                     one workload, its size and task count, a group of models
"""

from __future__ import annotations

import html
import io
from typing import Any

from helpers.timeline import model_color
from helpers.widgets import Choice, Float, Int, Panel

from .matrix import MODELS, Matrix, measure_matrix, plot_cell
from .workloads import WORKLOADS

__all__ = ["MODEL_GROUPS", "CellPicker", "guide", "make_panel"]

# "Close to the best": within this fraction of the best speed-up, a model is as good a choice
# (a shared machine easily moves a figure by 10-20 %).
_CLOSE_TO_BEST = 0.8
# Below this speed-up a model costs more than it gives on that workload.
_SLOWER = 0.9
_FIGSIZE = (11, 3.4)  # inches: one timeline, fills a notebook column
_DPI = 90
# The panel's groups of models (serial always runs first: it is the baseline).
MODEL_GROUPS = {
    "all": MODELS,
    "in the kernel's process": ("serial", "threads", "gevent", "asyncio"),
    "on several cores": ("serial", "processes", "pool", "gevent-in-processes"),
    "threads vs processes": ("serial", "threads", "processes"),
    "coroutines": ("serial", "gevent", "asyncio", "gevent-in-processes"),
}
# The panel's bounds on one run, so that its cell stays short: tasks × size of serial work, and
# tasks × payload (each process model pickles every task's payload once).
_MAX_SERIAL_MS = 5_000.0
_MAX_TOTAL_PAYLOAD_MB = 512.0


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


class CellPicker:
    """A dropdown of the matrix's cells; choosing one draws its timeline in place.

    It opens on the first workload's fastest cell; ``picker.draw(workload, model)`` draws another
    from code."""

    def __init__(self, matrix: Matrix):
        import ipywidgets as w

        self.matrix = matrix
        options = [(f"{wl} · {m}", (wl, m)) for wl in matrix.workloads for m in matrix.models]
        first = (matrix.workloads[0], matrix.best(matrix.workloads[0]).model)
        self.dropdown = w.Dropdown(options=options, value=first, description="timeline of",
                                   layout=w.Layout(width="60%"))
        self.dropdown.add_class("cc-control")
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.image.add_class("cc-plot")
        self.dropdown.observe(lambda change: self.draw(*change["new"]), names="value")
        self.widget = w.VBox([self.dropdown, self.image])
        self.draw(*first)

    def draw(self, workload: str, model: str) -> None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=_FIGSIZE, layout="constrained")
        plot_cell(self.matrix.cell(workload, model), fig.subplots())
        self.image.value = _png(fig)

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)


class _Guide(list):
    """The guide's rows, shown as an HTML table (and as text outside a notebook)."""

    def __str__(self) -> str:
        return "\n".join(f"{r['work']}: {r['best']} ({r['close']}); slower than serial: "
                         f"{r['avoid']} -> {r['chapter']}" for r in self)

    def _repr_html_(self) -> str:
        head = ("<tr><th>your work is mostly…</th><th>best here (measured)</th>"
                "<th>about as good</th><th>slower than serial</th><th>why: chapter</th></tr>")
        rows = "".join(
            f"<tr><td style='text-align:left'>{html.escape(r['work'])}</td>"
            f"<td><b>{html.escape(r['best'])}</b></td><td>{html.escape(r['close'])}</td>"
            f"<td>{html.escape(r['avoid'])}</td>"
            f"<td><a href='{r['chapter']}.ipynb'>{html.escape(r['chapter'])}</a></td></tr>"
            for r in self)
        return f"<table class='cc-guide'>{head}{rows}</table>"


def guide(matrix: Matrix) -> _Guide:
    """The decision guide, derived from `matrix`: per workload, the measured best model, the
    models within 80 % of it, and those slower than serial; with the chapter that explains it."""
    rows = _Guide()
    for name in matrix.workloads:
        best = matrix.best(name)
        ran = [matrix.cell(name, m) for m in matrix.models if m != "serial"]
        ran = [c for c in ran if c.speedup is not None]
        close = [c.model for c in ran if c is not best and c.speedup >= _CLOSE_TO_BEST *
                 best.speedup and c.speedup > 1]
        avoid = [f"{c.model} ({c.speedup:.2g}×)" for c in ran if c.speedup < _SLOWER]
        rows.append({
            "work": WORKLOADS[name].question,
            "best": f"{best.model}, {best.speedup:.2g}×",
            "close": ", ".join(close) or "—",
            "avoid": ", ".join(avoid) or "—",
            "chapter": WORKLOADS[name].chapter,
        })
    return rows


def _demo(fig, progress, *, workload: str, size: float, tasks: int, models: str) -> str:
    spec = WORKLOADS[workload]
    bound = _MAX_SERIAL_MS if spec.unit == "ms" else _MAX_TOTAL_PAYLOAD_MB
    if size * tasks > bound:
        raise ValueError(f"size × tasks must be at most {bound:g} {spec.unit} for {workload}, "
                         f"got {size:g} {spec.unit} × {tasks} = {size * tasks:g} {spec.unit}")
    matrix = measure_matrix([workload], MODEL_GROUPS[models], sizes={workload: (size, tasks)},
                            progress=lambda f, text: progress(0.9 * f, text))
    bars_ax, timeline_ax = fig.subplots(1, 2, width_ratios=[1, 2.2])
    cells = [matrix.cell(workload, m) for m in matrix.models]
    speedups = [c.speedup or 0.0 for c in cells]
    bars_ax.barh(matrix.models, speedups, color=[model_color(m) for m in matrix.models])
    bars_ax.axvline(1.0, color="#999999", linewidth=1)
    for row, cell in enumerate(cells):
        text = (f" {cell.speedup:.2f}×, {cell.memory_mb:.0f} MB" if cell.speedup is not None
                else " not run")
        bars_ax.text(speedups[row], row, text, va="center", fontsize=10)
    bars_ax.invert_yaxis()
    bars_ax.set_xlim(0, max(max(speedups), 1.0) * 1.7)
    bars_ax.set_xlabel("speed-up over serial")
    best = matrix.best(workload)
    plot_cell(best, timeline_ax)
    return (f"{workload}, {tasks} tasks of {size:g} {spec.unit}: best {best.model} "
            f"({best.speedup:.2f}× serial)")


def make_panel() -> Panel:
    """The chapter's panel: one workload, its task size and count, and which models run it."""
    return Panel(
        "One row of the matrix",
        [Choice("workload", list(WORKLOADS), default="I/O waits"),
         Float("size", 0.01, 200.0, default=20.0, step=0.01,
               label="task size"),  # ms of work or waiting; MB for "large payload"
         Int("tasks", 1, 400, default=40),
         Choice("models", list(MODEL_GROUPS), default="all")],
        _demo,
    )
