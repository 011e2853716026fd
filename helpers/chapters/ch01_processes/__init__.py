"""Chapter 01, processes: the life cycle, start methods and their cost, speed-up on real cores.

Two notebooks use it: ``01a_processes`` (the life cycle, exit codes, daemons, speed-up) and
``01b_start_methods`` (fork, spawn, forkserver, their cost, the ``__main__`` pitfall).

    lifecycle.py   the targets the cells start (introduce, returns, raises, exits_with_3, waits,
                   stderr_to_file, start_grandchild), measure_start_costs, run_in_fresh_process;
                   hello_process, exit_code_cases, daemon_demo (the same as functions)
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
    exits_with_3,
    hello_process,
    introduce,
    measure_start_costs,
    pid_alive,
    plot_start_costs,
    raises,
    returns,
    run_in_fresh_process,
    start_grandchild,
    stderr_to_file,
    waits,
)
from .scripts import (
    OrphanReport,
    ScriptRun,
    compare_forkserver_preload,
    forkserver_start_ms,
    heartbeat,
    orphaned_daemon,
    parent_with_daemon,
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

# Names the notebooks use without showing their source: none of them is the lesson.
__plumbing__ = (
    "busy_note",  # a sentence about the machine (one core, or a load above its cores)
    "pid_alive",  # a fact from the OS process table (psutil; a zombie counts as gone)
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
    "exits_with_3",
    "forkserver_start_ms",
    "heartbeat",
    "hello_process",
    "introduce",
    "make_panel",
    "measure_scaling",
    "measure_start_costs",
    "orphaned_daemon",
    "parent_with_daemon",
    "pid_alive",
    "plot_scaling",
    "plot_start_costs",
    "raises",
    "returns",
    "run_in_fresh_process",
    "run_script",
    "speedup_tasks",
    "start_grandchild",
    "stderr_to_file",
    "waits",
]
