"""How work runs: every way the course runs tasks, each returning the same `Run`.

Layers (each imports only those above it)::

    run.py        Run, Failure                       the one result shape
    contract.py   check_tasks, DEFAULT_TIMEOUT_SECONDS, MAX_TASKS   what every runner takes
    cleanup.py    stop_processes, stop_pool, …        leave nothing behind (the cleanup seam)
    inkernel.py   run_serial, run_threads             in the kernel's own process
    processes.py  run_processes, ProcessGroup         one process per task
    pools.py      run_pool, process_pool, …           a pool of reused worker processes
    isolated.py   run_patched, start_patched          a fresh child that monkey-patches first
    coroutines.py, dask.py                            gevent/asyncio and Dask (chapters 05-09)
    comparison.py compare, plot_comparison, run_model the same tasks, every model, side by side

Import what you need from here: ``from helpers.runners import run_pool, compare``.
"""

from __future__ import annotations

import importlib

# typing.TYPE_CHECKING without importing typing, which a spawned worker would otherwise pay for
# (type checkers read this name as True).
TYPE_CHECKING = False

# Each name is loaded from its module on first use: a worker process that needs one runner
# (a spawned child importing `helpers.runners.processes`) does not pay for pools, Dask or gevent.
_HOME = {
    "MAX_PROCESSES": "processes",
    "POOL_KINDS": "pools",
    "Comparison": "comparison",
    "DEFAULT_TIMEOUT_SECONDS": "contract",
    "MAX_TASKS": "contract",
    "check_tasks": "contract",
    "Failure": "run",
    "IsolatedChild": "isolated",
    "PatchedChildError": "isolated",
    "PatchedTimeout": "isolated",
    "ProcessGroup": "processes",
    "Run": "run",
    "close_queue": "cleanup",
    "collect_reports": "processes",
    "compare": "comparison",
    "default_chunksize": "pools",
    "explain_exitcode": "processes",
    "idle_until_stopped": "isolated",
    "ignore_sigint": "cleanup",
    "interrupt_after": "pools",
    "kill_process_group": "cleanup",
    "known_models": "comparison",
    "plot_comparison": "comparison",
    "process_executor": "pools",
    "process_pool": "pools",
    "record_call": "inkernel",
    "register_model": "comparison",
    "release_semaphores": "cleanup",
    "report_ready": "isolated",
    "run_patched": "isolated",
    "run_model": "comparison",
    "run_pool": "pools",
    "run_processes": "processes",
    "run_serial": "inkernel",
    "run_threads": "inkernel",
    "start_patched": "isolated",
    "stop_at_kernel_shutdown": "cleanup",
    "stop_executor": "cleanup",
    "stop_multiprocessing_servers": "cleanup",
    "stop_pool": "cleanup",
    "stop_processes": "cleanup",
    "stop_server": "cleanup",
    "unlink_shared_memory": "cleanup",
    "wait_for_stop": "isolated",
}

__all__ = sorted(_HOME)


# In a Jupyter kernel, the fork server and resource tracker that the runners start are asked to
# exit before the kernel shuts down, so it ends at once and leaves no temporary folder (see
# `cleanup.stop_at_kernel_shutdown`). A worker process never has ipykernel loaded: nothing to do.
if "ipykernel" in __import__("sys").modules:
    importlib.import_module(".cleanup", __name__).stop_at_kernel_shutdown()


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from .cleanup import (  # noqa: F401
        close_queue,
        ignore_sigint,
        kill_process_group,
        release_semaphores,
        stop_at_kernel_shutdown,
        stop_executor,
        stop_multiprocessing_servers,
        stop_pool,
        stop_processes,
        stop_server,
        unlink_shared_memory,
    )
    from .comparison import (  # noqa: F401
        Comparison,
        compare,
        known_models,
        plot_comparison,
        register_model,
        run_model,
    )
    from .contract import (  # noqa: F401
        DEFAULT_TIMEOUT_SECONDS,
        MAX_TASKS,
        check_tasks,
    )
    from .inkernel import (  # noqa: F401
        record_call,
        run_serial,
        run_threads,
    )
    from .isolated import (  # noqa: F401
        IsolatedChild,
        PatchedChildError,
        PatchedTimeout,
        idle_until_stopped,
        report_ready,
        run_patched,
        start_patched,
        wait_for_stop,
    )
    from .pools import (  # noqa: F401
        POOL_KINDS,
        default_chunksize,
        interrupt_after,
        process_executor,
        process_pool,
        run_pool,
    )
    from .processes import (  # noqa: F401
        MAX_PROCESSES,
        ProcessGroup,
        collect_reports,
        explain_exitcode,
        run_processes,
    )
    from .run import (  # noqa: F401
        Failure,
        Run,
    )
