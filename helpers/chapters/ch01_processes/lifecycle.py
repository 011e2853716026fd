"""Chapter 01's life-cycle demos: one process from start to exit, and what starting costs.

- `hello_process`: start, let the child say who it is, join — pid, parent pid, exit code.
- `exit_code_cases`: one process per way of ending (return, raise, ``os._exit(3)``, SIGTERM).
  Each child's ``sys.stderr`` points at a file that the parent reads back, so what a crashing
  child writes reaches the reader as data instead of as noise in the cell.
- `daemon_demo`: a child's daemon and non-daemon grandchildren when the child exits.
- `measure_start_costs`: ``start()`` and ``join()`` per start method, interleaved, medians.
- `run_in_fresh_process`: the ``__main__`` pitfall, shown with the executor that fails fast.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from helpers.course import (
    check_callable,
    check_float,
    check_int,
    check_start_method,
    check_start_methods,
    check_timeout,
    mp_context,
    quiet_fork_warnings,
)
from helpers.runners import (
    Failure,
    close_queue,
    collect_reports,
    explain_exitcode,
    release_semaphores,
    stop_executor,
    stop_processes,
)

__all__ = [
    "DaemonCase",
    "ExitCase",
    "FreshRun",
    "StartCost",
    "daemon_demo",
    "exit_code_cases",
    "hello_process",
    "measure_start_costs",
    "plot_start_costs",
    "run_in_fresh_process",
]

# A start-cost sample is one process; 64 spawned processes are already ~5 s on a slow laptop.
_MAX_START_SAMPLES = 64
_MAX_SECONDS = 3600.0


# -- a first process: pid, parent pid, exit code ---------------------------------------------------
def _introduce(results) -> None:
    results.put((0, {"child pid (os.getpid)": os.getpid(),
                 "child's parent (os.getppid)": os.getppid(),
                 "child's name": multiprocessing.current_process().name}))


def hello_process(start_method: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Start one process, let it say who it is, join it: the life cycle in one table."""
    start_method = check_start_method(start_method)
    check_timeout("timeout", timeout)
    ctx = mp_context(start_method)
    results = ctx.Queue()
    process = ctx.Process(target=_introduce, args=(results,), name="hello")
    try:
        with quiet_fork_warnings(start_method):
            process.start()
        reports: dict[int, Any] = {}
        collect_reports(results, [process], reports, time.perf_counter() + timeout)
        process.join(timeout)
    except BaseException:
        stop_processes([process])
        raise
    finally:
        close_queue(results)
        release_semaphores(results)
    said = reports[0]
    if isinstance(said, Failure):
        raise RuntimeError(f"the child did not introduce itself: {said}")
    return {"kernel pid (os.getpid)": os.getpid(), "Process.pid": process.pid, **said,
            "exitcode": process.exitcode, "start method": start_method}


@dataclass(frozen=True)
class ExitCase:
    """One way a process can end, as observed: its exit code and what it wrote to stderr."""

    case: str
    pid: int
    exitcode: int | None
    meaning: str
    stderr_tail: str


def _returns() -> None:
    return None


def _raises() -> None:
    raise ValueError("something went wrong in the child")


def _exits_with_3() -> None:
    os._exit(3)  # leaves at once: no cleanup, no flush, exit code 3


def _waits(ready, seconds: float) -> None:
    ready.set()
    time.sleep(seconds)


def _stderr_to_file(path: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Point this child's stderr at `path` (so its traceback becomes data), then run `fn`."""
    # Line-buffered and never closed: it must outlive `fn` to receive the dying traceback.
    sys.stderr = open(path, "w", encoding="utf-8", buffering=1)
    return fn(*args)


# Each case: the name shown to the reader, the child's function, whether the parent kills it.
_EXIT_CASES = ("returns normally", "raises an exception", "calls os._exit(3)",
               "terminated (SIGTERM)")


def exit_code_cases(start_method: str, *, timeout: float = 30.0) -> list[ExitCase]:
    """Start one process per way of ending and report each exit code with its meaning."""
    start_method = check_start_method(start_method)
    check_timeout("timeout", timeout)
    ctx = mp_context(start_method)
    cases: list[ExitCase] = []
    with tempfile.TemporaryDirectory(prefix="cc-exit-") as folder:
        for number, case in enumerate(_EXIT_CASES):
            path = os.path.join(folder, f"stderr-{number}.txt")
            ready = ctx.Event()
            target: tuple[Any, ...] = {
                0: (_returns,), 1: (_raises,), 2: (_exits_with_3,), 3: (_waits, ready, timeout),
            }[number]
            process = ctx.Process(target=_stderr_to_file, args=(path, *target), name=case)
            try:
                with quiet_fork_warnings(start_method):
                    process.start()
                if case.startswith("terminated"):
                    if not ready.wait(timeout):
                        raise TimeoutError("the child did not start in time")
                    process.terminate()
                process.join(timeout)
            finally:
                stop_processes([process])
                release_semaphores(ready)
            written = ""
            if os.path.exists(path):
                with open(path, encoding="utf-8") as captured:
                    written = captured.read().strip()
            tail = written.splitlines()[-1] if written else ""
            cases.append(ExitCase(case, process.pid, process.exitcode,
                                  explain_exitcode(process.exitcode), tail))
    return cases


# -- daemon processes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DaemonCase:
    daemon: bool
    child_exit_seconds: float  # from the child's last line of code to its exit
    grandchild_alive_after: bool


def _parent_of(results, daemon: bool, grandchild_seconds: float) -> None:
    # The child is single-threaded here, so fork is safe for the grandchild where it exists.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    grandchild = multiprocessing.get_context(method).Process(
        target=time.sleep, args=(grandchild_seconds,), daemon=daemon)
    grandchild.start()
    results.put((grandchild.pid, time.perf_counter()))
    # Returning now: multiprocessing's exit handler terminates daemonic children and joins the rest.


def daemon_demo(start_method: str, *, grandchild_seconds: float = 1.0,
                timeout: float = 30.0) -> list[DaemonCase]:
    """A child starts a grandchild and returns at once: daemon or not, what happens at its exit?"""
    check_float("grandchild_seconds", grandchild_seconds, 0.0, 60.0)
    start_method = check_start_method(start_method)
    check_timeout("timeout", timeout)
    ctx = mp_context(start_method)
    cases = []
    for daemon in (True, False):
        results = ctx.Queue()
        child = ctx.Process(target=_parent_of, args=(results, daemon, grandchild_seconds))
        try:
            with quiet_fork_warnings(start_method):
                child.start()
            grandchild_pid, returned_at = results.get(timeout=timeout)
            child.join(timeout + grandchild_seconds)
            exited_at = time.perf_counter()
        except BaseException:
            stop_processes([child])
            raise
        finally:
            results.close()
            results.join_thread()
            release_semaphores(results)
        cases.append(DaemonCase(daemon, exited_at - returned_at, _alive(grandchild_pid)))
    return cases


def _alive(pid: int) -> bool:
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # no such process (psutil.NoSuchProcess) — or psutil missing: ask the OS
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


# -- start cost ------------------------------------------------------------------------------------
def _noop() -> None:
    return None


# The start-cost probe's target: a built-in every interpreter has loaded, so the figure is the start
# method's own cost. A real target also imports its module in the child under spawn and forkserver
# (the "start" span of `run_processes` shows that part too).
_START_PROBE_TARGET = os.getpid


@dataclass
class StartCost:
    """Median cost of one process under a start method: start() and join() of a no-op target."""

    method: str
    start_ms: float
    join_ms: float
    samples: int
    warnings: list[str] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return self.start_ms + self.join_ms


def measure_start_costs(methods: Sequence[str] | None = None, *, samples: int = 5,
                        timeout: float = 30.0) -> list[StartCost]:
    """Time ``Process(target=os.getpid).start()`` and ``.join()`` under each method, interleaved.

    Rounds go method by method (fork, spawn, forkserver, fork, …) so a burst of load on a shared
    machine hits every method alike; each figure is a median. One unrecorded round first starts the
    forkserver and warms the file cache, so the figures are the steady cost per process.
    """
    methods = check_start_methods(methods, "methods")
    check_int("samples", samples, 1, _MAX_START_SAMPLES)
    check_timeout("timeout", timeout)
    timings: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    caught: dict[str, list[str]] = {m: [] for m in methods}
    for round_number in range(samples + 1):
        for method in methods:
            process = multiprocessing.get_context(method).Process(target=_START_PROBE_TARGET)
            try:
                with quiet_fork_warnings(method) as fork_warnings:
                    t0 = time.perf_counter()
                    process.start()
                    t1 = time.perf_counter()
                process.join(timeout)
                t2 = time.perf_counter()
            finally:
                stop_processes([process])
            caught[method].extend(w for w in fork_warnings if w not in caught[method])
            if round_number:
                timings[method].append(((t1 - t0) * 1e3, (t2 - t1) * 1e3))
    return [StartCost(m, median(s for s, _ in timings[m]), median(j for _, j in timings[m]),
                      samples, caught[m]) for m in methods]


def plot_start_costs(costs: Sequence[StartCost], ax) -> list:
    """Horizontal bars: start() then join() per method, in ms, with the total written at the end."""
    names = [c.method for c in costs]
    starts = [c.start_ms for c in costs]
    joins = [c.join_ms for c in costs]
    artists = [ax.barh(names, starts, color="#009E73", label="start()"),
               ax.barh(names, joins, left=starts, color="#E69F00",
                       label="join() (the child runs and exits)")]
    for row, cost in enumerate(costs):
        artists.append(ax.text(cost.total_ms, row, f"  {cost.total_ms:.1f} ms", va="center",
                               fontsize=11))
    ax.set_xlabel("milliseconds per process (median)", fontsize=12)
    ax.set_xlim(0, max((c.total_ms for c in costs), default=1) * 1.25)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    artists.append(ax.legend(loc="lower right", frameon=False))
    return artists


# -- the __main__ pitfall --------------------------------------------------------------------------
@dataclass
class FreshRun:
    """The outcome of sending a function to a brand-new worker process."""

    function: str
    start_method: str
    ok: bool
    value: Any = None
    error: str = ""
    worker_stderr: str = ""  # the last line the worker wrote before dying, if any
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.ok:
            return (f"{self.function} ran in a {self.start_method} worker and returned "
                    f"{self.value!r} ({self.seconds * 1e3:.0f} ms).")
        said = f"\n  the worker said: {self.worker_stderr}" if self.worker_stderr else ""
        return (f"{self.function} could not run in a {self.start_method} worker "
                f"({self.seconds * 1e3:.0f} ms):\n  {self.error}{said}")


def run_in_fresh_process(fn: Callable[..., Any], *args: Any, start_method: str,
                         timeout: float = 30.0) -> FreshRun:
    """Send ``fn(*args)`` to a new one-worker `ProcessPoolExecutor` and report what happened.

    Never raises for the function's sake: a function the worker cannot find (defined in a notebook,
    ``__main__``) makes the worker die, the executor raises `BrokenProcessPool` at once — unlike
    `Pool.map`, which waits forever — and the report says so, with the worker's last stderr line.
    The worker's stderr goes to a file, so its dying traceback is not printed into the cell.
    """
    check_callable("fn", fn)
    start_method = check_start_method(start_method)
    check_timeout("timeout", timeout, 0.001, _MAX_SECONDS)
    name = getattr(fn, "__qualname__", repr(fn))
    ctx = mp_context(start_method)
    with tempfile.TemporaryDirectory(prefix="cc-fresh-") as folder:
        path = os.path.join(folder, "worker-stderr.txt")
        started = time.perf_counter()
        executor = ProcessPoolExecutor(max_workers=1, mp_context=ctx,
                                       initializer=_stderr_to_file, initargs=(path, _noop))
        report = FreshRun(name, start_method, ok=False)
        try:
            with quiet_fork_warnings(start_method):
                future = executor.submit(fn, *args)
                report.value = future.result(timeout=timeout)
            report.ok = True
        except Exception as exc:  # the point of the demo: any failure becomes the report
            report.error = f"{type(exc).__name__}: {exc}"
        except BaseException:
            stop_executor(executor)
            raise
        finally:
            stop_executor(executor, kill=not report.ok)
            release_semaphores(executor)
        report.seconds = time.perf_counter() - started
        if os.path.exists(path):
            with open(path, encoding="utf-8") as captured:
                lines = captured.read().strip().splitlines()
            report.worker_stderr = lines[-1] if lines else ""
    return report
