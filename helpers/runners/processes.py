"""Run tasks one process each: start them all, collect what each did, stop them whatever happens.

Data flow of `run_processes` (one process and one pipe per task, each child reporting once)::

    the kernel (parent)                                 child process i (`_process_child`)
    -------------------                                 ----------------------------------
    reader, writer = os.pipe()  (a ReportPipe)
    requested_ns = perf_counter_ns()
    Process(target=child_main,
            args=(writer, i, lane, fn, args, requested_ns))
        .start(); writer.close()   ── start method ──>  entered_ns = perf_counter_ns()
                                                        "start" row [requested_ns, entered_ns)
                                                        "run" row around fn(*args)
    wait(readers + sentinels, timeout)  <── (lane, pid, clock, rows, report), one frame
    join(timeout) -> exitcode
    Trace of every lane  ──> plot_timeline(trace, color_by="cpu")

`run_processes` is one `ProcessGroup` with one function. A chapter whose children differ (a
sender and a receiver), share a lock made from the group's ``ctx``, or are acted on while they run
(terminated mid-task) uses the group itself: ``start`` each child, then ``wait`` -> `Run`; its
``with`` block stops whatever is left. Either way the parent's wait is `_collect_from_pipes`, the
one loop that tells a child that died silently from one whose report is still in the pipe.

A plain pipe per child, not a shared Queue: nothing for a child to import but the small module it
runs (a spawned child's imports are part of its start span), no feeder thread, no semaphores to
release, and a child that dies without a word is noticed at once (its sentinel fires). A child
never prints; a failure comes back as a `Failure` that carries the traceback text.
`collect_reports` is the Queue form of the same wait, for runners whose children share a queue.
The life-cycle demos (pid, exit codes, daemon, start cost, the ``__main__`` pitfall) live in
`helpers.chapters.ch01_processes`. Children ignore SIGINT: a kernel interrupt signals the whole
process group, and it is the parent that stops its children (terminate, then kill) and re-raises.
"""

from __future__ import annotations

import os
import pickle
import queue as queue_module
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from helpers.course import (
    check_callable,
    check_int,
    check_start_method,
    check_timeout,
    mp_context,
    quiet_fork_warnings,
)
from helpers.timeline import Event, Trace

from ._process_child import FRAME_HEADER_BYTES, ReportPipe, child_main
from .cleanup import stop_processes
from .contract import DEFAULT_TIMEOUT_SECONDS, check_tasks
from .run import Failure, Run

__all__ = ["MAX_PROCESSES", "ProcessGroup", "collect_reports", "explain_exitcode", "run_processes"]

# How often a waiting parent looks for a child that died without reporting (killed, os._exit):
# short enough that a crash is noticed at once, long enough to cost nothing while children work.
_POLL_SECONDS = 0.05
# The most processes one call may start: far beyond any laptop's cores (oversubscription demos go
# to a few times the core count), low enough that a typo cannot fork-bomb the reader's machine.
MAX_PROCESSES = 64


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
    with ProcessGroup(start_method, lane=lane) as group:
        for args in tasks:
            group.start(fn, args)
        return group.wait(timeout)


class ProcessGroup:
    """Children started one by one, each running ``fn(*args)`` and reporting once through a pipe
    of its own; what they send back (or their silent deaths) becomes one `Run`.

    `run_processes` is one group with one function; a chapter whose children differ (a sender
    and a receiver) or share a lock made from `ctx` starts them itself::

        with ProcessGroup(start_method) as group:     # leaving: stop every child still alive
            lock = group.ctx.Lock()                   # from the children's own context
            group.start(fn, (lock, 1))                # lane "process 1", started now
            group.start(other, (lock,), lane="receiver")
            run = group.wait(timeout)                 # every report, then every join -> Run

    ``start_spans=False`` leaves out each child's "start" span (requested → running), for
    timelines about what children do once they run. `wait` raises `TimeoutError` when a child
    has not reported by then; what did arrive stays, and `result()` reads it.
    """

    def __init__(self, start_method: str | None = None, *, lane: str = "process",
                 start_spans: bool = True) -> None:
        self.start_method = check_start_method(start_method)
        if not isinstance(lane, str) or not lane:
            raise ValueError(f"lane must be a non-empty string, got {lane!r}")
        if not isinstance(start_spans, bool):
            raise TypeError(f"start_spans must be True or False, got {start_spans!r}")
        self.ctx = mp_context(self.start_method)
        self.lane = lane
        self.start_spans = start_spans
        self.processes: list[Any] = []
        self.warnings: list[str] = []
        self._readers: list[Any] = []
        self._lanes: list[str] = []
        self._reports: dict[int, Any] = {}
        self._began: float | None = None
        self._ended: float | None = None

    def start(self, fn: Callable[..., Any], args: Sequence[Any] = (), *,
              lane: str | None = None) -> int:
        """Start one child that runs ``fn(*args)``, in lane `lane` (default: "process i");
        returns its index, the index of its value in the `Run`."""
        check_callable("fn", fn)
        index = len(self.processes)
        check_int("number of processes", index + 1, 1, MAX_PROCESSES)
        lane = f"{self.lane} {index + 1}" if lane is None else lane
        if not isinstance(lane, str) or not lane:
            raise ValueError(f"lane must be a non-empty string, got {lane!r}")
        if self._began is None:
            self._began = time.perf_counter()
        # Each pipe is made just before its child, and its write end closed here right after: a
        # child started by fork inherits no other child's write end.
        reader, writer = _report_pipe(self.ctx)
        try:
            requested_ns = time.perf_counter_ns() if self.start_spans else None
            process = self.ctx.Process(target=child_main, name=lane.replace(" ", "-"),
                                       args=(writer, index, lane, fn, tuple(args), requested_ns))
            with quiet_fork_warnings(self.start_method) as caught:
                process.start()
        except BaseException:
            reader.close()
            raise
        finally:
            writer.close()  # the child holds its own copy
        self.processes.append(process)
        self._readers.append(reader)
        self._lanes.append(lane)
        self.warnings.extend(caught)
        return index

    def wait(self, timeout: float = DEFAULT_TIMEOUT_SECONDS, *,
             on_death: Callable[[int], None] | None = None) -> Run:
        """Every child's report, then every join, within `timeout` s; returns `result()`.

        A child that ends without a report gets a "ProcessDied" `Failure`, and `on_death(index)`
        is called at once (to release others that wait for it). Raises `TimeoutError` naming the
        children still silent at the deadline; the group stops them when it closes."""
        timeout = check_timeout("timeout", timeout)
        if on_death is not None:
            check_callable("on_death", on_death)
        if not self.processes:
            raise ValueError("number of processes must be at least 1: call start() first")
        deadline = time.perf_counter() + timeout
        _collect_from_pipes(self._readers, self.processes, self._reports, deadline, on_death)
        for process in self.processes:
            process.join(max(0.0, deadline - time.perf_counter()))
        self._ended = time.perf_counter()
        return self.result()

    def result(self) -> Run:
        """What the children sent so far, as a `Run`: values in start order, a `Failure` for each
        child that failed, died, or (after a timeout) never reported."""
        trace, values, failures = Trace(), [None] * len(self.processes), {}
        for index in range(len(self.processes)):
            report = self._reports.get(index)
            if report is None:
                failures[index] = Failure("NoReport", "stopped before it reported (still "
                                          "running at the deadline)")
                continue
            lane_name, pid, clock, rows, outcome = report
            if rows:  # a child that died has none
                trace.extend(Trace([Event(lane_name, label, kind, start, end, pid, cpu)
                                    for label, kind, start, end, cpu in rows], {pid: clock}))
            if outcome[0] == "value":
                values[index] = outcome[1]
            else:
                failures[index] = Failure(*outcome[1:])
        began = self._began if self._began is not None else time.perf_counter()
        ended = self._ended if self._ended is not None else time.perf_counter()
        return Run("processes", f"{len(self.processes)} processes ({self.start_method})", values,
                   failures, ended - began, trace, workers=len(self.processes),
                   start_method=self.start_method, warnings=list(self.warnings),
                   details={"pids": [p.pid for p in self.processes],
                            "exitcodes": [p.exitcode for p in self.processes]})

    def lanes(self) -> list[str]:
        """The lane of each child in start order, as its spans name it ("process 1 [pid 42]")."""
        return [f"{lane} [pid {p.pid}]" for lane, p in zip(self._lanes, self.processes)]

    def close(self) -> None:
        """Stop every child still alive (terminate, then kill) and close every pipe."""
        stop_processes(self.processes)
        for reader in self._readers:
            reader.close()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _FrameReader:
    """The parent's end of a `ReportPipe`: reads whatever has arrived, until one whole frame."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)  # a read takes what is there and never waits
        self.fd = fd
        self._buffer = bytearray()

    def fileno(self) -> int:
        return self.fd

    def read(self) -> Any:
        """The report once complete, else `_INCOMPLETE`; `EOFError` if the pipe ended first."""
        while True:
            try:
                chunk = os.read(self.fd, _READ_BYTES)
            except BlockingIOError:
                break
            if not chunk:
                if self._complete():
                    break
                raise EOFError("the child's pipe ended before its report did")
            self._buffer += chunk
        if not self._complete():
            return _INCOMPLETE
        return pickle.loads(memoryview(self._buffer)[FRAME_HEADER_BYTES:])

    def _complete(self) -> bool:
        header = self._buffer[:FRAME_HEADER_BYTES]
        return len(header) == FRAME_HEADER_BYTES and \
            len(self._buffer) - FRAME_HEADER_BYTES >= int.from_bytes(header, "big")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _ConnectionReader:
    """The same for a `multiprocessing.Pipe` end (Windows, where a plain descriptor cannot be
    passed to a spawned child): `multiprocessing.connection.wait` waits on the connection."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def fileno(self) -> int:
        return self.connection.fileno()

    def read(self) -> Any:
        return self.connection.recv() if self.connection.poll() else _INCOMPLETE

    def close(self) -> None:
        self.connection.close()


_INCOMPLETE = object()
# One read takes up to this much of a report: a pipe holds 64 KiB on Linux, so a large report
# arrives in as few reads as the child's writes allow.
_READ_BYTES = 1 << 20


def _report_pipe(ctx: Any) -> tuple[Any, Any]:
    """(the parent's reader, the child's writer) of one report pipe."""
    if sys.platform == "win32":
        reader, writer = ctx.Pipe(duplex=False)
        return _ConnectionReader(reader), writer
    read_fd, write_fd = os.pipe()
    return _FrameReader(read_fd), ReportPipe(write_fd)


def _collect_from_pipes(readers: list[Any], processes: list[Any], reports: dict[int, Any],
                        deadline: float, on_death: Callable[[int], None] | None = None) -> None:
    """Read child i's report from ``readers[i]`` into ``reports[i]`` by `deadline`; a child that
    ended without one gets a "ProcessDied" report (and ``on_death(i)``, if given). Raises
    `TimeoutError` at the deadline. The one place that tells a silent death from a late report:
    a report written just before the exit is read first, even when the sentinel fires with it."""
    from multiprocessing.connection import wait

    pending = {i: reader for i, reader in enumerate(readers) if i not in reports}
    while pending:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            names = ", ".join(processes[i].name for i in sorted(pending))
            raise TimeoutError(f"{len(pending)} of {len(processes)} processes did not report "
                               f"in time ({names})")
        handles: dict[Any, int] = {}
        for index, reader in pending.items():
            handles[_waitable(reader)] = index
            handles[processes[index].sentinel] = index
        for handle in wait(list(handles), remaining):
            index = handles[handle]
            if index not in pending:
                continue  # both its pipe and its sentinel were ready: already read
            try:
                report = pending[index].read()
            except EOFError:
                report = _INCOMPLETE
                exited = True
            else:
                exited = handle == processes[index].sentinel
            if report is not _INCOMPLETE:
                reports[index] = report
            elif exited:  # a child writes its report before it exits: it died without one
                processes[index].join(min(_POLL_SECONDS,
                                          max(0.0, deadline - time.perf_counter())))
                reports[index] = _died(processes[index].exitcode)
                if on_death is not None:
                    on_death(index)
            else:
                continue  # part of a large report: the rest is on its way
            del pending[index]


def _waitable(reader: Any) -> Any:
    # `wait` takes descriptors on POSIX, and the connection object itself on Windows.
    return reader.connection if isinstance(reader, _ConnectionReader) else reader.fd


def _died(exitcode: int | None) -> tuple:
    failure = ("failure", "ProcessDied", explain_exitcode(exitcode), "")
    return ("", 0, (0, 0), [], failure)


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
    if isinstance(exitcode, bool) or not isinstance(exitcode, int):
        raise TypeError(f"exitcode must be an int (a process's exitcode) or None, got {exitcode!r}")
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
