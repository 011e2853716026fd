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
from typing import Any

from ._cpu import current_cpu
from ._events import KINDS, Event, Trace, clock_pair, rebuild_event

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


class TracedResult:
    """A worker's return value together with the recording of how it was computed.

    It crosses a pipe once per task, so it pickles small: the value, each span as a plain tuple and
    the clock pairs (about 170 bytes for one span, against 270 for the dataclasses' own pickling;
    a pool's result pipe holds 64 KiB, and results that fill it stall the workers). The kernel
    rebuilds the `Trace` only when ``recording`` is first read. What remains of the cost is mostly
    the reference to this class, looked up on both sides (about 5 µs a round trip).
    """

    __slots__ = ("value", "_recording", "_rows", "_clocks")

    def __init__(self, value: Any, recording: Trace) -> None:
        self.value = value
        self._recording = recording
        self._rows: list[tuple] | None = None
        self._clocks: dict[int, tuple[int, int]] | None = None

    @classmethod
    def one_span(cls, value: Any, label: str, start_ns: int, end_ns: int, *, kind: str = "run",
                 lane: str | None = None, cpus: bool = True) -> TracedResult:
        """`value` with one span of this process, from `start_ns` to `end_ns`
        (`time.perf_counter_ns()` reads): what `Traced` and `run_pool`'s workers return per task.

        The cheap way to a one-span recording (a few µs, against about 15 with a `Recorder`):
        a pool task of 0.2 ms pays for it once per task. `lane` defaults to `process_lane()`.
        """
        if not isinstance(label, str) or kind not in KINDS or not 0 <= start_ns <= end_ns:
            Event(lane or "lane", label, kind, start_ns, end_ns)  # raises, naming the field
        pid, own_lane, clock = _this_process()
        row = (lane or own_lane, label, kind, start_ns, end_ns, pid,
               current_cpu() if cpus else None)
        return _traced_result_from_rows(value, row, clock)

    @property
    def recording(self) -> Trace:
        if self._recording is None:
            self._recording = Trace(self.events, self.clocks)
            self._rows = self._clocks = None
        return self._recording

    @property
    def events(self) -> list[Event]:
        """The recording's events: ``trace.extend(result)`` takes them, with `clocks`, without
        building the `Trace` first."""
        if self._recording is not None:
            return self._recording.events
        rows = self._rows
        if type(rows) is tuple:  # one span, as Traced makes
            return [rebuild_event(*rows)]
        return [rebuild_event(*row) for row in rows]

    @property
    def clocks(self) -> dict[int, tuple[int, int]]:
        if self._recording is not None:
            return self._recording.clocks
        if type(self._rows) is tuple:  # one span: its process's clock pair alone
            return {self._rows[5]: self._clocks}
        return self._clocks

    def __reduce__(self):
        if self._recording is None:
            rows, clocks = self._rows, self._clocks
        else:
            rows = [(e.lane, e.label, e.kind, e.start_ns, e.end_ns, e.pid, e.cpu)
                    for e in self._recording.events]
            clocks = self._recording.clocks
        return _traced_result_from_rows, (self.value, rows, clocks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TracedResult):
            return NotImplemented
        return self.value == other.value and self.recording == other.recording

    __hash__ = None  # mutable, as the dataclass it replaces

    def __repr__(self) -> str:
        return f"TracedResult(value={self.value!r}, recording={self.recording!r})"


def _traced_result_from_rows(value: Any, rows: tuple | list[tuple],
                             clocks: tuple[int, int] | dict[int, tuple[int, int]]) -> TracedResult:
    """A `TracedResult` from the fields of its events, checked where they were made (in
    `one_span`, or before pickling): one tuple for a single span (the common case, and the smallest
    pickle) with its process's clock pair, else a list of them with a clock pair per pid. The
    `Trace` is built when ``recording`` is first read."""
    result = _new_result(TracedResult)
    result.value = value
    result._recording = None
    result._rows = rows
    result._clocks = clocks
    return result


_new_result = object.__new__


# This process's lane name and clock pair, made once per process (a forked child has a new pid):
# `Traced` runs once per task, and a 0.2 ms task would pay a tenth more for fresh ones.
_process_facts: tuple[int, str, tuple[int, int]] | None = None


def _this_process() -> tuple[int, str, tuple[int, int]]:
    global _process_facts
    pid = os.getpid()
    if _process_facts is None or _process_facts[0] != pid:
        _process_facts = (pid, process_lane(), clock_pair())
    return _process_facts


class Traced:
    """Wrap a top-level function so each call returns a `TracedResult`.

    ``pool.map(Traced(cpu_task), sizes)`` records one "run" span per task in the lane of the worker
    process that ran it. The label is the function name and the argument, so the timeline tells
    which worker ran which task. A call costs a few microseconds beyond the function's own: two
    clock reads, a core look-up and one small tuple to pickle.
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
        if label is not None and not isinstance(label, str):
            raise ValueError(f"label must be a string or None, got {label!r}")
        self.fn = fn
        self.kind = kind
        self.label = label
        self.cpus = cpus
        self._name = getattr(fn, "__name__", "task")

    def __reduce__(self):
        # Pickled once per task by a pool: the arguments, not the instance's __dict__.
        return _rebuild_traced, (self.fn, self.kind, self.label, self.cpus)

    def __call__(self, *args: Any, **kwargs: Any) -> TracedResult:
        start = time.perf_counter_ns()
        value = self.fn(*args, **kwargs)
        end = time.perf_counter_ns()
        # Inlined `TracedResult.one_span` (its fields are known good): a 0.2 ms task pays for this.
        label = self.label or f"{self._name}({_short(args)})"
        pid, lane, clock = _this_process()
        return _traced_result_from_rows(
            value, (lane, label, self.kind, start, end, pid, current_cpu() if self.cpus else None),
            clock)


def _rebuild_traced(fn: Callable[..., Any], kind: str, label: str | None,
                    cpus: bool) -> Traced:
    return Traced(fn, kind=kind, label=label, cpus=cpus)


def _short(args: tuple[Any, ...], limit: int = 24) -> str:
    text = repr(args[0]) if len(args) == 1 else ", ".join(map(repr, args))
    return text if len(text) <= limit else text[: limit - 1] + "…"
