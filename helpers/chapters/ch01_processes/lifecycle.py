"""Chapter 01's life-cycle code: the targets its cells start, and what starting a process costs.

The notebook (``01a_processes``) writes the `Process` calls out in its cells and shows these
targets with `show_source`; a target must live in a module, because a spawned or forkserver
child finds it by importing ``module.name``::

    cell:  ctx.Process(target=introduce, args=(queue,)) ──start──> child runs introduce(queue)
           queue.get(timeout=…) <── {"pid": …, "parent pid": …} ──┘   then exits: exitcode 0

- `introduce`: the child says who it is (pid, parent pid, name) through a queue.
- `returns`, `raises`, `exits_with_3`, `waits`: one target per way of ending; `stderr_to_file`
  points a child's stderr at a file first, so a dying traceback becomes data, not noise in a cell.
- `start_grandchild`: a child that starts a (daemon) grandchild and returns at once.
- `measure_start_costs`: ``Process(target=os.getpid)`` started and joined under each method.
- `run_in_fresh_process`: the ``__main__`` pitfall, with the executor that fails fast.
- `exit_code_cases`, `daemon_demo`, `hello_process`: the same, as functions (tests, bench).
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
    MAX_TIMEOUT_SECONDS,
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
    close_queue,
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
    "exits_with_3",
    "hello_process",
    "check_file_path",
    "introduce",
    "measure_start_costs",
    "pid_alive",
    "plot_start_costs",
    "raises",
    "returns",
    "run_in_fresh_process",
    "start_grandchild",
    "stderr_to_file",
    "waits",
]

# A start-cost sample is one process; 64 spawned processes are already ~5 s on a slow laptop.
_MAX_START_SAMPLES = 64


# -- a first process: pid, parent pid, exit code ---------------------------------------------------
def introduce(results) -> None:
    """The child: put who it is on the `results` queue (children report data, never print)."""
    results.put({"child pid (os.getpid)": os.getpid(),
                 "child's parent (os.getppid)": os.getppid(),
                 "child's name": multiprocessing.current_process().name})


def hello_process(start_method: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Start one process, let it say who it is, join it: the life cycle in one table."""
    start_method = check_start_method(start_method)
    check_timeout("timeout", timeout)
    ctx = mp_context(start_method)
    results = ctx.Queue()
    process = ctx.Process(target=introduce, args=(results,), name="hello")
    try:
        with quiet_fork_warnings(start_method):
            process.start()
        said = results.get(timeout=timeout)
        process.join(timeout)
    finally:
        stop_processes([process])
        close_queue(results)
        release_semaphores(results)
    return {"kernel pid (os.getpid)": os.getpid(), "Process.pid": process.pid, **said,
            "exitcode": process.exitcode, "start method": start_method}


# -- exit codes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExitCase:
    """One way a process can end, as observed: its exit code and what it wrote to stderr."""

    case: str
    pid: int
    exitcode: int | None
    meaning: str
    stderr_tail: str


def returns() -> None:
    return None  # the process ends normally: exit code 0


def raises() -> None:
    raise ValueError("something went wrong in the child")  # uncaught: traceback, exit code 1


def exits_with_3() -> None:
    os._exit(3)  # leaves at once (no cleanup, no flush): exit code 3


def waits(ready, seconds: float) -> None:
    check_float("seconds", seconds, 0.0, MAX_TIMEOUT_SECONDS)
    ready.set()  # tell the parent it is running, then wait to be terminated
    time.sleep(seconds)


def check_file_path(name: str, value: object) -> str:
    """Return `value` if it names a file to write in an existing folder, else raise naming it.

    A path is a non-empty ``str`` (or ``os.PathLike``): an int would be taken by ``open`` for a
    file *descriptor*, and ``""`` turns into a file of the current folder once a suffix is added.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be the path of a file (a str), got {value!r:.80}")
    folder = os.path.dirname(value)
    if not value or value.endswith(os.sep) or not os.path.isdir(folder or "."):
        raise ValueError(f"{name} must be the path of a file in an existing folder, "
                         f"got {value!r:.200}")
    return value


def stderr_to_file(path: str, target: Callable[..., Any], *args: Any) -> Any:
    """Point this child's stderr at the file `path` (a dying traceback becomes data), run target."""
    path = check_file_path("path", path)
    check_callable("target", target)
    # Line-buffered and never closed: it must outlive `target` to receive the traceback.
    sys.stderr = open(path, "w", encoding="utf-8", buffering=1)
    return target(*args)


def _last_line(path: str) -> str:
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as captured:
        lines = captured.read().strip().splitlines()
    return lines[-1] if lines else ""


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
                0: (returns,), 1: (raises,), 2: (exits_with_3,), 3: (waits, ready, timeout),
            }[number]
            process = ctx.Process(target=stderr_to_file, args=(path, *target), name=case)
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
            cases.append(ExitCase(case, process.pid, process.exitcode,
                                  explain_exitcode(process.exitcode), _last_line(path)))
    return cases


# -- daemon processes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DaemonCase:
    daemon: bool
    child_exit_seconds: float  # from the child's last line of code to its exit
    grandchild_alive_after: bool


def start_grandchild(results, daemon: bool, seconds: float) -> None:
    """The child: start a grandchild that sleeps `seconds`, report its pid, and return at once."""
    check_float("seconds", seconds, 0.0, MAX_TIMEOUT_SECONDS)
    # This child is single-threaded, so fork is safe for the grandchild where the OS has it.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    grandchild = multiprocessing.get_context(method).Process(
        target=time.sleep, args=(seconds,), daemon=daemon)
    grandchild.start()
    results.put((grandchild.pid, time.perf_counter()))
    # Returning now: multiprocessing's exit handler terminates daemonic children, joins the rest.


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
        child = ctx.Process(target=start_grandchild, args=(results, daemon, grandchild_seconds))
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
            close_queue(results)
            release_semaphores(results)
        cases.append(DaemonCase(daemon, exited_at - returned_at, pid_alive(grandchild_pid)))
    return cases


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, dead but not yet reaped, counts as gone)."""
    check_int("pid", pid, 1, 2**31 - 1)
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
    """Time ``Process(target=os.getpid).start()`` and ``.join()`` under each start method."""
    methods = check_start_methods(methods, "methods")
    check_int("samples", samples, 1, _MAX_START_SAMPLES)
    check_timeout("timeout", timeout)
    timings: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    warned: dict[str, list[str]] = {m: [] for m in methods}
    for round_number in range(samples + 1):  # round 0 starts the fork server: not recorded
        for method in methods:  # interleaved, so a burst of load hits every method alike
            # os.getpid: a built-in every interpreter has, so nothing to import in the child
            process = mp_context(method).Process(target=os.getpid)
            with quiet_fork_warnings(method) as fork_warnings:
                t0 = time.perf_counter()
                process.start()  # returns once the child exists
                t1 = time.perf_counter()
            process.join(timeout)  # the child runs os.getpid() and exits
            t2 = time.perf_counter()
            stop_processes([process])  # only does something if join timed out
            warned[method] += [w for w in fork_warnings if w not in warned[method]]
            if round_number:
                timings[method].append(((t1 - t0) * 1e3, (t2 - t1) * 1e3))
    return [StartCost(m, median(s for s, _ in timings[m]), median(j for _, j in timings[m]),
                      samples, warned[m]) for m in methods]


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


def _noop() -> None:
    return None


def run_in_fresh_process(fn: Callable[..., Any], *args: Any, start_method: str,
                         timeout: float = 30.0) -> FreshRun:
    """Send ``fn(*args)`` to a new one-worker `ProcessPoolExecutor`; report what happened."""
    check_callable("fn", fn)
    start_method = check_start_method(start_method)
    check_timeout("timeout", timeout, 0.001, MAX_TIMEOUT_SECONDS)
    report = FreshRun(getattr(fn, "__qualname__", repr(fn)), start_method, ok=False)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cc-fresh-") as folder:
        stderr_path = os.path.join(folder, "worker-stderr.txt")
        # The worker's stderr goes to a file: its dying traceback is data, not noise in the cell.
        executor = ProcessPoolExecutor(max_workers=1, mp_context=mp_context(start_method),
                                       initializer=stderr_to_file, initargs=(stderr_path, _noop))
        try:
            with quiet_fork_warnings(start_method):
                future = executor.submit(fn, *args)  # pickles fn as "module.name"
                report.value = future.result(timeout=timeout)  # a dead worker: BrokenProcessPool
            report.ok = True
        except Exception as exc:  # the point of the demo: any failure becomes the report
            report.error = f"{type(exc).__name__}: {exc}"
        finally:
            stop_executor(executor, kill=not report.ok)  # also on an interrupt
            release_semaphores(executor)
        report.worker_stderr = _last_line(stderr_path)
    report.seconds = time.perf_counter() - started
    return report
