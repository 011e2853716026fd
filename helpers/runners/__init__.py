"""How work runs: every way the course runs tasks, each returning the same `Run`.

Layers (each imports only those above it)::

    run.py        Run, Failure                       the one result shape
    cleanup.py    stop_processes, stop_pool, …        leave nothing behind (the cleanup seam)
    inkernel.py   run_serial, run_threads             in the kernel's own process
    processes.py  run_processes                       one process per task
    pools.py      run_pool, process_pool, …           a pool of reused worker processes
    isolated.py   run_patched, start_patched          a fresh child that monkey-patches first
    compare.py    compare, plot_comparison            the same tasks, every model, side by side
    coroutines.py, dask.py                            gevent/asyncio and Dask (chapters 08, 09)

Import what you need from here: ``from helpers.runners import run_pool, compare``.
"""

from .cleanup import (
    close_queue,
    ignore_sigint,
    release_semaphores,
    stop_executor,
    stop_pool,
    stop_processes,
    stop_server,
    unlink_shared_memory,
)
from .compare import Comparison, compare, known_models, plot_comparison, register_model
from .inkernel import record_call, run_serial, run_threads
from .isolated import (
    IsolatedChild,
    PatchedChildError,
    PatchedTimeout,
    idle_until_stopped,
    report_ready,
    run_patched,
    start_patched,
    wait_for_stop,
)
from .pools import (
    POOL_KINDS,
    default_chunksize,
    interrupt_after,
    process_executor,
    process_pool,
    run_pool,
    tasks_per_worker,
)
from .processes import MAX_PROCESSES, collect_reports, explain_exitcode, run_processes
from .run import Failure, Run

__all__ = [
    "MAX_PROCESSES",
    "POOL_KINDS",
    "Comparison",
    "Failure",
    "IsolatedChild",
    "PatchedChildError",
    "PatchedTimeout",
    "Run",
    "close_queue",
    "collect_reports",
    "compare",
    "default_chunksize",
    "explain_exitcode",
    "idle_until_stopped",
    "ignore_sigint",
    "interrupt_after",
    "known_models",
    "plot_comparison",
    "process_executor",
    "process_pool",
    "record_call",
    "register_model",
    "release_semaphores",
    "report_ready",
    "run_patched",
    "run_pool",
    "run_processes",
    "run_serial",
    "run_threads",
    "start_patched",
    "stop_executor",
    "stop_pool",
    "stop_processes",
    "stop_server",
    "tasks_per_worker",
    "unlink_shared_memory",
    "wait_for_stop",
]
