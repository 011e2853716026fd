"""Where Python is going: the rows the matrix adds when this interpreter offers them.

    free_threading()      a free-threaded build (3.13+, ``python3.13t``) with the GIL off right now:
                          CPU-bound pure Python in threads against serial, measured
                          otherwise: what this interpreter is, and why the row is not run
    subinterpreters()     ``concurrent.futures.InterpreterPoolExecutor`` (3.14, on top of
                          ``concurrent.interpreters``): one interpreter per worker, each with its
                          own GIL, in this one process; measured against serial
                          otherwise: which Python would have it

Each returns a `FutureRow`: either measured (``speedup`` set) or not offered (``reason`` set).
"""

from __future__ import annotations

import platform
import sys
import sysconfig
import time
from dataclasses import dataclass

from helpers.course import check_float, check_int
from helpers.runners import run_serial, run_threads
from helpers.workloads import cpu_task, iterations_for

__all__ = ["FutureRow", "free_threading", "gil_state", "subinterpreters"]

# The most tasks a row runs: enough to fill a few cores, few enough to stay within a cell.
_MAX_TASKS = 64
# A subinterpreter pool's results come back within this (it starts interpreters in threads).
_TIMEOUT_SECONDS = 120.0


@dataclass
class FutureRow:
    """One of the newer models: measured, or the plain reason it is not run here."""

    name: str
    offered: bool
    speedup: float | None = None
    seconds: float | None = None
    serial_seconds: float | None = None
    reason: str = ""

    def __str__(self) -> str:
        if not self.offered:
            return f"{self.name}: not run — {self.reason}"
        return (f"{self.name}: {self.seconds:.2f} s against {self.serial_seconds:.2f} s serial, "
                f"{self.speedup:.2f}× ({self.reason})")


def _python() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def gil_state() -> tuple[bool, bool]:
    """``(free-threaded build, GIL enabled now)``. A free-threaded build turns the GIL back on
    when it imports an extension module not marked safe without it (and says so in a warning)."""
    build = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    enabled = getattr(sys, "_is_gil_enabled", None)
    return build, True if enabled is None else bool(enabled())


def free_threading(tasks: int = 4, task_seconds: float = 0.1) -> FutureRow:
    """CPU-bound pure Python in threads, where the GIL is off; else why not."""
    check_int("tasks", tasks, 1, _MAX_TASKS)
    check_float("task_seconds", task_seconds, 0.001, 2.0)
    build, enabled = gil_state()
    name = "threads, free-threaded build"
    if not build:
        return FutureRow(name, False, reason=f"this is {_python()} with the GIL (a standard "
                         "build); a free-threaded one is a separate interpreter, e.g. "
                         "python3.13t or python3.14t")
    if enabled:
        return FutureRow(name, False, reason=f"{_python()} is a free-threaded build, but the GIL "
                         "is on now: an extension module imported in this process needed it "
                         "(PYTHON_GIL=0 forces it off, at that module's risk)")
    items = [(iterations_for(task_seconds),)] * tasks
    serial = run_serial(cpu_task, items)
    threads = run_threads(cpu_task, items)
    return FutureRow(name, True, serial.seconds / threads.seconds, threads.seconds,
                     serial.seconds, f"{tasks} threads, GIL off")


def subinterpreters(tasks: int = 4, task_seconds: float = 0.1, workers: int = 2) -> FutureRow:
    """CPU-bound pure Python on an `InterpreterPoolExecutor`, where there is one; else why not."""
    check_int("tasks", tasks, 1, _MAX_TASKS)
    check_float("task_seconds", task_seconds, 0.001, 2.0)
    check_int("workers", workers, 1, _MAX_TASKS)
    name = "subinterpreters"
    try:
        from concurrent.futures import InterpreterPoolExecutor
    except ImportError:
        return FutureRow(name, False, reason=f"this is {_python()}; concurrent.interpreters and "
                         "InterpreterPoolExecutor arrive in Python 3.14")
    size = iterations_for(task_seconds)
    serial = run_serial(cpu_task, [(size,)] * tasks)
    started = time.perf_counter()
    with InterpreterPoolExecutor(max_workers=workers) as executor:
        list(executor.map(cpu_task, [1] * workers, timeout=_TIMEOUT_SECONDS))  # all started
        started = time.perf_counter()
        values = list(executor.map(cpu_task, [size] * tasks, timeout=_TIMEOUT_SECONDS))
        seconds = time.perf_counter() - started
    if values != serial.values:
        raise RuntimeError("the subinterpreters computed different values than serial")
    return FutureRow(name, True, serial.seconds / seconds, seconds, serial.seconds,
                     f"{workers} interpreters in one process, one GIL each")
