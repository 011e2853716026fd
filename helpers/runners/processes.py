"""Run tasks one process each: start them all, collect what each did, stop them whatever happens.

Data flow of `run_processes` (one process per task, each reporting exactly once)::

    the kernel (parent)                                 child process i
    -------------------                                 ---------------
    requested_ns = perf_counter_ns()
    Process(target=_child_main,
            args=(queue, i, fn, args, requested_ns))
        .start()                   ── start method ──>  entered_ns = perf_counter_ns()
                                                        "start" span [requested_ns, entered_ns)
                                                        "run" span around fn(*args)
    queue.get(timeout)   <── (i, TracedResult | Failure), pickled once
    join(timeout) -> exitcode
    Trace of every lane  ──> plot_timeline(trace, color_by="cpu")

A child never prints. A failure comes back as a `Failure` that carries the traceback text.
The life-cycle demos (pid, exit codes, daemon, start cost, the ``__main__`` pitfall) live in
`helpers.chapters.ch01_processes`. Children ignore
SIGINT: a kernel interrupt signals the whole process group, and it is the parent that stops its
children (terminate, then kill) and re-raises.
"""

from __future__ import annotations

import os
import queue as queue_module
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from helpers.course import (
    check_callable,
    check_start_method,
    check_timeout,
    mp_context,
    quiet_fork_warnings,
)
from helpers.timeline import Recorder, Trace, TracedResult

from .cleanup import close_queue, release_semaphores, stop_processes
from .inkernel import DEFAULT_TIMEOUT_SECONDS, check_tasks, record_call
from .run import Failure, Run

__all__ = ["MAX_PROCESSES", "collect_reports", "explain_exitcode", "run_processes"]

# How often a waiting parent looks for a child that died without reporting (killed, os._exit):
# short enough that a crash is noticed at once, long enough to cost nothing while children work.
_POLL_SECONDS = 0.05
# The most processes one call may start: far beyond any laptop's cores (oversubscription demos go
# to a few times the core count), low enough that a typo cannot fork-bomb the reader's machine.
MAX_PROCESSES = 64


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
        report = Failure.from_exception(exc, traceback.format_exc())
    results.put((index, report))


def run_processes(
    fn: Callable[..., Any],
    tasks: Sequence[Any],
    *,
    start_method: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    lane: str = "process",
) -> Run:
    """Run ``fn(*args)`` for each entry of `tasks`, each in a new process, all at once.

    `fn` must be a top-level function of a module (it is sent by reference). Returns the values in
    task order and a trace with one lane per process: its start (requested → running) and its run,
    with the core it ran on. ``start_method=None`` is the kernel-safe default (never fork). On any
    exception — a timeout, a KeyboardInterrupt — every child is terminated before it propagates.
    """
    check_callable("fn", fn)
    tasks = check_tasks(tasks, MAX_PROCESSES)
    start_method = check_start_method(start_method)
    timeout = check_timeout("timeout", timeout)
    if not isinstance(lane, str) or not lane:
        raise ValueError(f"lane must be a non-empty string, got {lane!r}")
    ctx = mp_context(start_method)
    results = ctx.Queue()
    processes: list[Any] = []
    reports: dict[int, Any] = {}
    fork_warnings: list[str] = []
    started = time.perf_counter()
    try:
        with quiet_fork_warnings(start_method) as fork_warnings:
            for index, args in enumerate(tasks):
                process = ctx.Process(
                    target=_child_main,
                    args=(results, index, f"{lane} {index + 1}", fn, args,
                          time.perf_counter_ns()),
                    name=f"{lane}-{index + 1}",
                )
                process.start()
                processes.append(process)
        collect_reports(results, processes, reports, started + timeout)
        for process in processes:
            process.join(max(0.0, started + timeout - time.perf_counter()))
        seconds = time.perf_counter() - started
    finally:
        stop_processes(processes)  # a no-op unless a join above timed out or we were interrupted
        close_queue(results)
        release_semaphores(results)
    trace, values, failures = Trace(), [None] * len(processes), {}
    for index, report in sorted(reports.items()):
        if isinstance(report, TracedResult):
            values[index] = report.value
            trace.extend(report.recording)
        else:
            failures[index] = report
    return Run("processes", f"{len(processes)} processes ({start_method})", values, failures,
               seconds, trace, workers=len(processes), start_method=start_method,
               warnings=fork_warnings,
               details={"pids": [p.pid for p in processes],
                        "exitcodes": [p.exitcode for p in processes]})


def collect_reports(results, processes: Sequence[Any], reports: dict[int, Any],
                    deadline: float) -> None:
    """Read one ``(index, report)`` per child from `results` into `reports`, by `deadline`
    (a `time.perf_counter` value); a child that died silently gets a `Failure` instead.
    Raises `TimeoutError` when some child has not reported by then."""
    if isinstance(processes, (str, bytes)) or not isinstance(processes, Sequence) or \
            not processes:
        raise ValueError(f"processes must be a non-empty list of started processes, "
                         f"got {processes!r}")
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
                    reports[index] = Failure(
                        "ProcessDied", explain_exitcode(process.exitcode))


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
