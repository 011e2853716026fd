"""What every `run_processes` child runs: time its start, run the task, send back one report.

A spawned (or fork-server) child is a fresh interpreter: before it can call its target it imports
the target's module, and all that module imports. That time is inside the hatched "start" span
chapter 01 draws, so this module imports nothing beyond what multiprocessing has loaded already,
plus the one question the recorders ask (which core am I on?). Even `multiprocessing.connection`
stays out (it costs a spawned child as much as a tenth of its start): the report travels through
a plain pipe, written here and read by `helpers.runners.processes`, which turns the plain tuples
into a `Trace` and a `Failure`::

    child                                              parent
    -----                                              ------
    entered_ns = perf_counter_ns()
    rows = [("start", "start", requested, entered, cpu)]
    value = fn(*args)          # its "run" row, or the rows of a TracedResult it returned
    pipe.send((lane, pid, clock, rows, ("value", value)))   ──►  Trace, values
           or  (lane, pid, clock, rows, ("failure", type name, message, traceback text))

On the pipe a report is one frame: its length (8 bytes, big-endian), then its pickle.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time

from helpers.timeline import current_cpu

__all__ = ["FRAME_HEADER_BYTES", "ReportPipe", "child_main"]

FRAME_HEADER_BYTES = 8  # the length of the pickle that follows: no report is 2**64 bytes


class ReportPipe:
    """The write end of one child's report pipe: a file descriptor, duplicated into the child.

    Under fork the child inherits the descriptor; under spawn and forkserver, pickling it asks
    the process being started to pass a duplicate along (multiprocessing's `DupFd`), which is
    how multiprocessing passes its own pipes. Where descriptors cannot be passed so (Windows),
    the parent hands the child a `multiprocessing.Pipe` end instead: it has the same ``send``.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self):
        from multiprocessing import reduction

        return _reopened, (reduction.DupFd(self.fd),)

    def send(self, report) -> None:
        """Write `report` as one frame (blocking until the parent has read what does not fit)."""
        data = pickle.dumps(report, pickle.HIGHEST_PROTOCOL)
        frame = memoryview(len(data).to_bytes(FRAME_HEADER_BYTES, "big") + data)
        while frame:
            frame = frame[os.write(self.fd, frame):]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _reopened(duplicate) -> ReportPipe:
    return ReportPipe(duplicate.detach())


def child_main(pipe, index: int, lane: str, fn, args: tuple, requested_ns: int | None) -> None:
    """The target of every `run_processes` child; `pipe` is its `ReportPipe` (or Pipe end).
    ``requested_ns=None``: no "start" row (a `ProcessGroup` with ``start_spans=False``)."""
    entered_ns = time.perf_counter_ns()
    # A kernel interrupt signals the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    clock = (time.perf_counter_ns(), time.time_ns())  # maps this process's spans to the epoch
    rows = [] if requested_ns is None else \
        [("start", "start", min(requested_ns, entered_ns), entered_ns, current_cpu())]
    try:
        start = time.perf_counter_ns()
        value = fn(*args)
        end = time.perf_counter_ns()
        if _is_traced_result(value):  # a task that recorded its own finer spans: keep those
            rows.extend((e.label, e.kind, e.start_ns, e.end_ns, e.cpu)
                        for e in value.recording.events)
            value = value.value
        else:
            rows.append((f"{getattr(fn, '__name__', 'task')} #{index}", "run", start, end,
                         current_cpu()))
        report: tuple = ("value", value)
    except Exception as exc:
        report = _failure(exc)
    lane = f"{lane} [pid {os.getpid()}]"
    try:
        pipe.send((lane, os.getpid(), clock, rows, report))
    except Exception as exc:  # the value does not pickle: say so instead of dying silently
        pipe.send((lane, os.getpid(), clock, rows,
                   _failure(exc, "the task's return value could not be sent back: ")))
    pipe.close()


def _is_traced_result(value) -> bool:
    # A TracedResult can only exist where its module was imported (by the task's own module),
    # so the check costs this child no import of the recorders.
    record = sys.modules.get("helpers.timeline._record")
    return record is not None and isinstance(value, record.TracedResult)


def _failure(exc: BaseException, prefix: str = "") -> tuple:
    import traceback  # only on the way out of a failed task

    return ("failure", type(exc).__name__, prefix + str(exc), traceback.format_exc())
