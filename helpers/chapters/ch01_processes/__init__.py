"""Chapter 01, processes: the life cycle, start methods and their cost, speed-up on real cores.

    lifecycle.py   hello_process, exit_code_cases, daemon_demo, measure_start_costs,
                   run_in_fresh_process (the ``__main__`` pitfall)
    speedup.py     compare_speedup (serial / threads / processes), measure_scaling, make_panel
    scripts.py     run_script (the script form of the pitfall), compare_forkserver_preload,
                   orphaned_daemon (a daemon outlives a parent killed with SIGKILL)
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
from .scripts import (
    OrphanReport,
    ScriptRun,
    compare_forkserver_preload,
    forkserver_start_ms,
    orphaned_daemon,
    run_script,
)
from .speedup import (
    MODELS,
    Scaling,
    busy_note,
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
    "OrphanReport",
    "Scaling",
    "ScriptRun",
    "StartCost",
    "busy_note",
    "compare_forkserver_preload",
    "compare_speedup",
    "daemon_demo",
    "demo",
    "exit_code_cases",
    "forkserver_start_ms",
    "hello_process",
    "make_panel",
    "measure_scaling",
    "measure_start_costs",
    "orphaned_daemon",
    "plot_scaling",
    "plot_start_costs",
    "run_in_fresh_process",
    "run_script",
    "speedup_tasks",
]
