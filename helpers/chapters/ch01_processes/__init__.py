"""Chapter 01, processes: the life cycle, start methods and their cost, speed-up on real cores.

    lifecycle.py   hello_process, exit_code_cases, daemon_demo, measure_start_costs,
                   run_in_fresh_process (the ``__main__`` pitfall)
    speedup.py     compare_speedup (serial / threads / processes), measure_scaling, make_panel
"""

from .lifecycle import (
    DaemonCase,
    ExitCase,
    FreshRun,
    StartCost,
    daemon_demo,
    exit_code_cases,
    hello_process,
    measure_start_costs,
    plot_start_costs,
    run_in_fresh_process,
)
from .speedup import (
    MODELS,
    Scaling,
    compare_speedup,
    demo,
    make_panel,
    measure_scaling,
    plot_scaling,
    speedup_tasks,
)

__all__ = [
    "DaemonCase",
    "ExitCase",
    "FreshRun",
    "MODELS",
    "Scaling",
    "StartCost",
    "compare_speedup",
    "daemon_demo",
    "demo",
    "exit_code_cases",
    "hello_process",
    "make_panel",
    "measure_scaling",
    "measure_start_costs",
    "plot_scaling",
    "plot_start_costs",
    "run_in_fresh_process",
    "speedup_tasks",
]
