"""Chapter 08, choosing a model: every workload run by every model, and a guide drawn from it.

    workloads.py   the six workloads, each task in the form each model runs (blocking, gevent,
                   asyncio), recording its own compute and wait spans
    matrix.py      measure_matrix, measure_row (one helpers.runners.compare per row),
                   MemorySampler, plot_matrix, plot_cell
    views.py       CellPicker (a cell's timeline one click away), guide, make_panel

Names are imported on first use (PEP 562): a worker process that unpickles one task function of
this package imports that module only, not the widgets and plots the notebook uses.
"""

from __future__ import annotations

import importlib

from helpers.course import preload_in_forkserver

# The workloads are what every worker process of this chapter unpickles: the fork server loads
# them once, so a one-process-per-task cell does not pay their import in every child.
preload_in_forkserver(f"{__name__}.workloads")

__all__ = [
    "MODELS",
    "MODEL_GROUPS",
    "WORKLOADS",
    "Cell",
    "CellPicker",
    "Matrix",
    "MemorySampler",
    "Workload",
    "guide",
    "machine_note",
    "make_panel",
    "measure_matrix",
    "measure_row",
    "plot_cell",
    "plot_matrix",
]

# Not the lesson, so a notebook may use them without showing their source (the test
# tests/test_code_on_page.py reads this list):
__plumbing__ = (
    "machine_note",  # a fact about the machine: usable cores and the load average, as text
    "CellPicker",  # a view: a dropdown that draws the timeline of a cell already measured
    "guide",  # a view: a table read off the measured matrix (best, close, slower, chapter)
)

_WHERE = {
    "Cell": "matrix",
    "MODELS": "matrix",
    "Matrix": "matrix",
    "MemorySampler": "matrix",
    "machine_note": "matrix",
    "measure_matrix": "matrix",
    "measure_row": "matrix",
    "plot_cell": "matrix",
    "plot_matrix": "matrix",
    "CellPicker": "views",
    "MODEL_GROUPS": "views",
    "guide": "views",
    "make_panel": "views",
    "WORKLOADS": "workloads",
    "Workload": "workloads",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
