"""Chapter 09, beyond one machine: chapter 04's pool workload on Dask's distributed scheduler.

    cluster.py   cli_cluster: `dask scheduler` and `dask worker` commands on 127.0.0.1, joined
                 by address, every process stopped when the block ends; the command lines
    demos.py     measure_overhead (Dask against Pool.map), kill_a_worker, compare_locality
    tasks.py     what the workers run: part_sum (a slice of an array), and the exercise's tasks
    panel.py     make_panel: workers, threads per worker, tasks, task size

The LocalCluster itself and the task stream as a timeline are in `helpers.runners.dask`.

Names are imported on first use (PEP 562): a worker process that unpickles one task function of
this package imports that module only, not the widgets and plots the notebook uses.
"""

from __future__ import annotations

import importlib

__all__ = [
    "OVERHEAD_TASK_MS",
    "CliCluster",
    "KillReport",
    "LocalityReport",
    "OverheadRow",
    "cli_cluster",
    "compare_locality",
    "kill_a_worker",
    "make_panel",
    "measure_overhead",
    "part_sum",
    "plot_kill",
    "scheduler_command",
    "worker_command",
]

_WHERE = {
    "CliCluster": "cluster",
    "cli_cluster": "cluster",
    "scheduler_command": "cluster",
    "worker_command": "cluster",
    "KillReport": "demos",
    "LocalityReport": "demos",
    "OVERHEAD_TASK_MS": "demos",
    "OverheadRow": "demos",
    "compare_locality": "demos",
    "kill_a_worker": "demos",
    "measure_overhead": "demos",
    "plot_kill": "demos",
    "part_sum": "tasks",
    "make_panel": "panel",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
