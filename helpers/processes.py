"""Chapter 01's machinery: start processes, collect what they did, and measure what starting costs.

Data flow of `run_processes` (one process per task, each reporting exactly once)::

    the kernel (parent)                                 child process i
    -------------------                                 ---------------
    requested_ns = perf_counter_ns()
    Process(target=_child_main,
            args=(queue, i, fn, args, requested_ns))
        .start()                   ── start method ──>  entered_ns = perf_counter_ns()
                                                        "start" span [requested_ns, entered_ns)
                                                        "run" span around fn(*args)
    queue.get(timeout)   <── (i, TracedResult | ChildFailure), pickled once
    join(timeout) -> exitcode
    Trace of every lane  ──> plot_timeline(trace, color_by="cpu")

A child never prints. A failure comes back as a `ChildFailure` that carries the traceback text.
The life-cycle demos (pid, exit codes, daemon, start cost, the ``__main__`` pitfall) live in
`helpers.process_lifecycle`. Children ignore
SIGINT: a kernel interrupt signals the whole process group, and it is the parent that stops its
children (terminate, then kill) and re-raises.
"""

from __future__ import annotations

import os
import queue as queue_module
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .course import available_start_methods, check_float, check_int, mp_context
from .timeline import Recorder, Trace, TracedResult

__all__ = [
    "ChildFailure",
    "ProcessRun",
    "explain_exitcode",
    "kernel_safe_start_method",
    "quiet_fork_warnings",
    "record_call",
    "release_semaphores",
    "run_processes",
    "run_serial",
    "run_threads",
    "stop_processes",
]

# The longest any demo here should need is about 10 s of work; a machine shared with other jobs can
# be several times slower. A wait longer than this means something is stuck, and the reader should
# get an error rather than a cell that never finishes.
DEFAULT_TIMEOUT_SECONDS = 120.0
# How often a waiting parent looks for a child that died without reporting (killed, os._exit):
# short enough that a crash is noticed at once, long enough to cost nothing while children work.
_POLL_SECONDS = 0.05
# terminate() sends SIGTERM; a child gets this long to go before it is sent SIGKILL.
_TERMINATE_GRACE_SECONDS = 1.0
# The most processes one call may start: far beyond any laptop's cores (oversubscription demos go
# to a few times the core count), low enough that a typo cannot fork-bomb the reader's machine.
MAX_PROCESSES = 64
_MAX_SECONDS = 3600.0


# -- start methods and the fork warning ------------------------------------------------------------
def kernel_safe_start_method() -> str:
    """The start method the course uses by default in a notebook kernel: never ``fork``.

    A kernel always runs threads (I/O, heartbeat, control); forking a process that has threads can
    deadlock the child, which is why Python 3.12+ warns and 3.14 makes forkserver the Linux default.
    forkserver forks from a clean single-threaded server (fast); spawn (macOS, Windows) starts a
    fresh interpreter.
    """
    offered = available_start_methods()
    return "forkserver" if "forkserver" in offered else "spawn"


@contextmanager
def quiet_fork_warnings(start_method: str) -> Iterator[list[str]]:
    """Capture, instead of show, the 3.12+ "multi-threaded, use of fork()" DeprecationWarning.

    Yields a list that receives the warning messages, so a demo can return them as data. Other
    start methods never warn; for them this does nothing.
    """
    caught: list[str] = []
    if start_method != "fork":
        yield caught
        return
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always", DeprecationWarning)
        try:
            yield caught
        finally:
            caught.extend(str(w.message) for w in recorded)


def release_semaphores(*owners: Any) -> None:
    """Unlink now the named semaphores of finished queues, events and pools.

    Under spawn and forkserver every lock of a `Queue`, `Event` or `Pool` is a named POSIX
    semaphore (``/dev/shm/sem.mp-…``) that a new child opens by name. multiprocessing unlinks it
    when the Python object is garbage-collected, which for a pool (full of reference cycles) is
    some time later. Once no new process will need the name — every worker stopped — unlinking at
    once leaves nothing behind; processes that still hold the semaphore keep working.
    """
    names: set[str] = set()
    for owner in owners:
        names |= _semaphore_names(owner, depth=3)
    if not names:
        return
    from multiprocessing import util
    from multiprocessing.synchronize import SemLock

    registry = getattr(util, "_finalizer_registry", {})
    for finalizer in list(registry.values()):
        args = getattr(finalizer, "_args", None) or ()
        if getattr(finalizer, "_callback", None) is SemLock._cleanup and args[:1] and \
                args[0] in names:
            try:
                finalizer()  # unlinks, unregisters from the resource tracker, never runs again
            except OSError:  # already unlinked by someone else: still tell the tracker
                from multiprocessing import resource_tracker

                resource_tracker.unregister(args[0], "semaphore")


def _semaphore_names(owner: Any, depth: int) -> set[str]:
    from multiprocessing.synchronize import SemLock

    if isinstance(owner, SemLock):
        name = getattr(getattr(owner, "_semlock", None), "name", None)  # None under fork
        return {name} if name else set()
    found: set[str] = set()
    if depth == 0 or not hasattr(owner, "__dict__"):
        return found
    for value in vars(owner).values():
        if type(value).__module__.startswith(("multiprocessing", "concurrent")):
            found |= _semaphore_names(value, depth - 1)
    return found


def stop_processes(processes: Sequence[Any], grace: float = _TERMINATE_GRACE_SECONDS) -> None:
    """Terminate, then kill, then reap every process still alive: nothing is left behind."""
    for process in processes:
        if process.pid is not None and process.exitcode is None:
            process.terminate()
    for process in processes:
        if process.pid is None:
            continue
        process.join(grace)
        if process.exitcode is None:
            process.kill()
            process.join(grace)


# -- one process per task --------------------------------------------------------------------------
@dataclass(frozen=True)
class ChildFailure:
    """An exception raised in a child, sent back as data (no traceback printed by the child)."""

    type_name: str
    message: str
    traceback_text: str

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


@dataclass
class ProcessRun:
    """What one run of tasks did: results in task order, the timeline, the wall time."""

    model: str  # "serial", "threads" or "processes"
    values: list[Any]
    trace: Trace
    seconds: float
    pids: list[int] = field(default_factory=list)
    exitcodes: list[int | None] = field(default_factory=list)
    failures: dict[int, ChildFailure] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def record_call(recorder: Recorder, label: str, fn: Callable[..., Any], args: Sequence[Any]) -> Any:
    """Call ``fn(*args)`` and record it in `recorder`: one ``run`` span, or, when `fn` returns a
    `TracedResult` (a task that records its own finer spans), those spans. Returns the value."""
    start = time.perf_counter_ns()
    value = fn(*args)
    if isinstance(value, TracedResult):
        recorder.adopt(value.recording)
        return value.value
    recorder.add(label, "run", start, time.perf_counter_ns())
    return value


def _child_main(results, index: int, lane: str, fn: Callable[..., Any], args: tuple,
                requested_ns: int) -> None:
    """The target of every `run_processes` child: time the start, run, report once."""
    entered_ns = time.perf_counter_ns()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; see the module docstring
    recorder = Recorder(f"{lane} [pid {os.getpid()}]")
    recorder.add("start", "start", min(requested_ns, entered_ns), entered_ns)
    try:
        value = record_call(recorder, f"{getattr(fn, '__name__', 'task')} #{index}", fn, args)
        report: Any = TracedResult(value, recorder.recording())
    except Exception as exc:
        report = ChildFailure(type(exc).__name__, str(exc), traceback.format_exc())
    results.put((index, report))


def run_processes(
    fn: Callable[..., Any],
    args_list: Sequence[Sequence[Any]],
    *,
    start_method: str,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    lane: str = "process",
) -> ProcessRun:
    """Run ``fn(*args)`` for each entry of `args_list`, each in a new process, all at once.

    `fn` must be a top-level function of a module (it is sent by reference). Returns the values in
    task order and a trace with one lane per process: its start (requested → running) and its run,
    with the core it ran on. On any exception — a timeout, a KeyboardInterrupt — every child is
    terminated before the exception propagates.
    """
    check_int("number of processes", len(args_list), 1, MAX_PROCESSES)
    check_float("timeout", timeout, 0.001, _MAX_SECONDS)
    ctx = mp_context(start_method)
    results = ctx.Queue()
    processes: list[Any] = []
    reports: dict[int, Any] = {}
    started = time.perf_counter()
    try:
        with quiet_fork_warnings(start_method) as fork_warnings:
            for index, args in enumerate(args_list):
                process = ctx.Process(
                    target=_child_main,
                    args=(results, index, f"{lane} {index + 1}", fn, tuple(args),
                          time.perf_counter_ns()),
                    name=f"{lane}-{index + 1}",
                )
                process.start()
                processes.append(process)
        _collect(results, processes, reports, started + timeout)
        for process in processes:
            process.join(max(0.0, started + timeout - time.perf_counter()))
        seconds = time.perf_counter() - started
    except BaseException:
        stop_processes(processes)
        raise
    finally:
        results.close()
        results.join_thread()
        stop_processes(processes)  # a no-op unless a join above timed out
        release_semaphores(results)
    trace, values, failures = Trace(), [None] * len(processes), {}
    for index, report in sorted(reports.items()):
        if isinstance(report, TracedResult):
            values[index] = report.value
            trace.extend(report.recording)
        else:
            failures[index] = report
    return ProcessRun("processes", values, trace, seconds, [p.pid for p in processes],
                      [p.exitcode for p in processes], failures, fork_warnings)


def _collect(results, processes: Sequence[Any], reports: dict[int, Any], deadline: float) -> None:
    """Read one report per child; a child that died silently gets a `ChildFailure` instead."""
    while len(reports) < len(processes):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError(f"{len(processes) - len(reports)} of {len(processes)} processes "
                               f"did not report in time")
        try:
            index, report = results.get(timeout=min(remaining, _POLL_SECONDS))
            reports[index] = report
            continue
        except queue_module.Empty:
            pass
        for index, process in enumerate(processes):
            if index not in reports and process.exitcode is not None:
                try:  # a report written just before the exit is already in the pipe
                    late_index, report = results.get(timeout=_POLL_SECONDS)
                    reports[late_index] = report
                except queue_module.Empty:
                    reports[index] = ChildFailure(
                        "ProcessDied", explain_exitcode(process.exitcode), "")


def run_threads(
    fn: Callable[..., Any],
    args_list: Sequence[Sequence[Any]],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> ProcessRun:
    """The same tasks in threads of this process: one lane per thread (they share the GIL)."""
    check_int("number of threads", len(args_list), 1, MAX_PROCESSES)
    check_float("timeout", timeout, 0.001, _MAX_SECONDS)
    values: list[Any] = [None] * len(args_list)
    recordings: list[Any] = [None] * len(args_list)
    failures: dict[int, ChildFailure] = {}

    def work(index: int, args: Sequence[Any]) -> None:
        recorder = Recorder(f"thread {index + 1} [pid {os.getpid()}]")
        try:
            values[index] = record_call(
                recorder, f"{getattr(fn, '__name__', 'task')} #{index}", fn, args)
        except Exception as exc:
            failures[index] = ChildFailure(type(exc).__name__, str(exc), traceback.format_exc())
        recordings[index] = recorder.recording()

    # Daemon threads: a thread cannot be killed, so an interrupted run must not keep the kernel
    # from exiting. CPU tasks are finite; they end on their own.
    threads = [threading.Thread(target=work, args=(i, a), daemon=True, name=f"thread-{i + 1}")
               for i, a in enumerate(args_list)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, started + timeout - time.perf_counter()))
        if thread.is_alive():
            raise TimeoutError(f"{thread.name} did not finish within {timeout:g} s")
    seconds = time.perf_counter() - started
    trace = Trace()
    for recording in recordings:
        trace.extend(recording)
    return ProcessRun("threads", values, trace, seconds, [os.getpid()] * len(threads),
                      failures=failures)


def run_serial(fn: Callable[..., Any], args_list: Sequence[Sequence[Any]]) -> ProcessRun:
    """The same tasks one after the other in the kernel: the baseline of every speed-up."""
    check_int("number of tasks", len(args_list), 1, MAX_PROCESSES)
    recorder = Recorder(f"serial [pid {os.getpid()}]")
    started = time.perf_counter()
    values = []
    for index, args in enumerate(args_list):
        label = f"{getattr(fn, '__name__', 'task')} #{index}"
        values.append(record_call(recorder, label, fn, args))
    seconds = time.perf_counter() - started
    return ProcessRun("serial", values, Trace().extend(recorder.recording()), seconds,
                      [os.getpid()])


def explain_exitcode(exitcode: int | None) -> str:
    """What an exit code means, in words (negative: killed by that signal, on POSIX)."""
    if exitcode is None:
        return "still running (or never started)"
    if exitcode == 0:
        return "finished normally"
    if exitcode == 1:
        return "an uncaught exception (or sys.exit(1))"
    if exitcode > 0:
        return f"exited with code {exitcode} (sys.exit / os._exit)"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    return f"killed by {name}"



def _stop_executor(executor: ProcessPoolExecutor, *, kill: bool = True) -> None:
    """Shut an executor down without waiting on a stuck worker: terminate its processes first."""
    if kill:
        terminate = getattr(executor, "terminate_workers", None)  # Python 3.14+
        if terminate is not None:
            terminate()
        else:  # before 3.14 there is no public way to reach the workers
            stop_processes(list((getattr(executor, "_processes", None) or {}).values()))
    executor.shutdown(wait=True, cancel_futures=True)
