"""Recorders for processes and threads.

A worker records into a plain local list (no locks, no inter-process traffic while it works) and
ships the whole recording back once, with its result::

    child process                                   parent (the notebook kernel)
    -------------                                   ----------------------------
    rec = Recorder()            # lane "Worker-1 [pid 4242]"
    with rec.span("task 3"):    # two perf_counter_ns() reads
        ...work...
    return TracedResult(value, rec.recording())  -->  trace.extend(result.recording)
                                 (pickled once)        plot_timeline(trace)

`Traced(fn)` wraps a top-level function so that ``pool.map(Traced(fn), items)`` returns
`TracedResult` objects: it pickles under fork, spawn and forkserver alike because it only holds a
reference to `fn`.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ._cpu import current_cpu
from ._events import KINDS, Event, Trace, clock_pair

__all__ = ["Recorder", "Traced", "TracedResult", "process_lane"]


def process_lane() -> str:
    """The default lane name of the calling process: its name and pid."""
    return f"{multiprocessing.current_process().name} [pid {os.getpid()}]"


class Recorder:
    """Records the spans of one lane (a process, or one thread of it).

    >>> rec = Recorder("demo", cpus=False)
    >>> with rec.span("sum"):
    ...     _ = sum(range(1000))
    >>> [(e.lane, e.label, e.kind) for e in rec.recording().events]
    [('demo', 'sum', 'run')]

    Recording a span costs two clock reads and a list append, plus a core look-up when
    ``cpus=True``; it never talks to another process.
    """

    def __init__(self, lane: str | None = None, *, cpus: bool = True) -> None:
        self.lane = lane or process_lane()
        self.pid = os.getpid()
        self._cpus = cpus
        self._rows: list[tuple[str, str, int, int, int | None]] = []
        self._clock = clock_pair()

    @classmethod
    def for_thread(cls, *, cpus: bool = True) -> Recorder:
        """A recorder whose lane is the calling thread (threads of one process share the pid)."""
        return cls(f"{threading.current_thread().name} [pid {os.getpid()}]", cpus=cpus)

    @contextmanager
    def span(self, label: str, kind: str = "run") -> Iterator[None]:
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            end = time.perf_counter_ns()
            self._rows.append((label, kind, start, end, current_cpu() if self._cpus else None))

    def add(self, label: str, kind: str, start_ns: int, end_ns: int) -> None:
        """Record a span timed elsewhere (for example by a callback)."""
        self._rows.append((label, kind, start_ns, end_ns, current_cpu() if self._cpus else None))

    def adopt(self, recording: Trace) -> None:
        """Take the spans of `recording` into this lane, keeping their times and cores.

        For a task that records its own finer spans (``run``/``wait`` chunks) and returns them
        in a `TracedResult`: the runner that called it files them under its worker's lane.
        """
        self._rows.extend((e.label, e.kind, e.start_ns, e.end_ns, e.cpu) for e in recording.events)

    def record_result(self, label: str, start_ns: int, value: Any) -> Any:
        """File a finished task in this lane and return its plain value: the spans it recorded
        itself when it returned a `TracedResult`, else one ``run`` span `label` from `start_ns`
        to now. The one place every runner turns a task's result into spans."""
        if isinstance(value, TracedResult):
            self.adopt(value.recording)
            return value.value
        self.add(label, "run", start_ns, time.perf_counter_ns())
        return value

    def recording(self) -> Trace:
        """The validated events and this process's clock pair, ready to pickle back once."""
        events = [
            Event(self.lane, label, kind, start, end, self.pid, cpu)
            for label, kind, start, end, cpu in self._rows
        ]
        return Trace(events, {self.pid: self._clock})


@dataclass
class TracedResult:
    """A worker's return value together with the recording of how it was computed."""

    value: Any
    recording: Trace


class Traced:
    """Wrap a top-level function so each call returns a `TracedResult`.

    ``pool.map(Traced(cpu_task), sizes)`` records one "run" span per task in the lane of the worker
    process that ran it. The label is the function name and the argument, so the timeline tells
    which worker ran which task.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        kind: str = "run",
        label: str | None = None,
        cpus: bool = True,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.fn = fn
        self.kind = kind
        self.label = label
        self.cpus = cpus

    def __call__(self, *args: Any, **kwargs: Any) -> TracedResult:
        recorder = Recorder(cpus=self.cpus)
        label = self.label or f"{getattr(self.fn, '__name__', 'task')}({_short(args)})"
        with recorder.span(label, self.kind):
            value = self.fn(*args, **kwargs)
        return TracedResult(value, recorder.recording())


def _short(args: tuple[Any, ...], limit: int = 24) -> str:
    text = ", ".join(repr(a) for a in args)
    return text if len(text) <= limit else text[: limit - 1] + "…"
