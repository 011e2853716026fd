"""The asyncio recorder: every step of every task, turned into run spans, one lane per task.

An asyncio task runs its coroutine in *steps*: the event loop calls ``coro.send(None)``, the
coroutine runs until its next ``await`` that has to wait, and hands control back. The recorder
puts a thin proxy around each task's coroutine (through the loop's task factory, so every
``create_task``, ``gather``, ``TaskGroup`` and ``as_completed`` task is seen) and notes the two
clock reads around each step::

    loop ──send──> proxy(coro) ──send──> coro runs until an await that waits
          <──────  [t0, t1, proxy] appended to one list   <─────────
    afterwards:   task "fetch 3"  [t0, t1)  run
                  event loop      the gaps between steps   idle   (waiting for I/O or timers)

As with greenlets, the hot path is two clock reads and three appends to one list (a list append
is specialised by the interpreter; ints are not tracked by the garbage collector). The proxy's
own ``send`` is a Python call the loop would not otherwise make: that is the recorder's floor,
and ``make bench`` prints it beside the recorder's cost.

Use it inside a running loop, around the code whose tasks you want to see::

    async def main():
        async with TaskRecorder() as rec:
            async with asyncio.TaskGroup() as group:
                for i in range(3):
                    group.create_task(fetch(i), name=f"fetch {i}")
        plot_timeline(rec.recording())

Only tasks created inside the block are recorded (the task running the block itself is not
proxied: it was created before). The loop's previous task factory is kept and restored.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Coroutine
from typing import Any

from ._events import Event, Trace, clock_pair

__all__ = ["TaskRecorder"]


class _Steps(Coroutine):
    """A coroutine that runs `coro` and notes when each of its steps starts and ends."""

    __slots__ = ("_coro", "_buffer", "task")

    def __init__(self, coro: Coroutine, buffer: list) -> None:
        self._coro = coro
        self._buffer = buffer
        self.task: asyncio.Task | None = None

    def send(self, value: Any, _now=time.perf_counter_ns) -> Any:
        start = _now()
        try:
            return self._coro.send(value)
        finally:
            buffer = self._buffer
            buffer.append(start)
            buffer.append(_now())
            buffer.append(self)

    def throw(self, *exc: Any, _now=time.perf_counter_ns) -> Any:  # cancellation arrives here
        start = _now()
        try:
            return self._coro.throw(*exc)
        finally:
            buffer = self._buffer
            buffer.append(start)
            buffer.append(_now())
            buffer.append(self)

    def close(self) -> None:
        self._coro.close()

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self) -> Any:
        return self.send(None)

    # What asyncio's repr and debug mode ask a coroutine for.
    @property
    def cr_code(self):
        return getattr(self._coro, "cr_code", None)

    @property
    def cr_frame(self):
        return getattr(self._coro, "cr_frame", None)

    @property
    def cr_running(self) -> bool:
        return bool(getattr(self._coro, "cr_running", False))

    def __repr__(self) -> str:
        return repr(self._coro)


class TaskRecorder:
    """Record which asyncio task ran when, on the running loop.

    Lanes are task names (``create_task(..., name=...)``; asyncio's default is ``Task-N``); the
    loop's lane (``event loop`` by default) holds ``idle`` spans: time in which none of the
    recorded tasks ran. A recorder records one run; `recording` builds the spans once and then
    drops its references to the tasks, so finished ones can be freed.
    """

    def __init__(self, *, loop_lane: str = "event loop") -> None:
        if not isinstance(loop_lane, str) or not loop_lane:
            raise ValueError(f"loop_lane must be a non-empty lane name, got {loop_lane!r}")
        self._loop_lane = loop_lane
        self._buffer: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous_factory: Any = None
        self._span: tuple[int, int] | None = None
        self._started_ns: int | None = None
        self._recording: Trace | None = None
        self._clock = clock_pair()

    def _factory(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future:
        steps = _Steps(coro, self._buffer)
        if self._previous_factory is not None:
            task = self._previous_factory(loop, steps, **kwargs)
        else:
            task = asyncio.Task(steps, loop=loop, **kwargs)
        steps.task = task
        return task

    def __enter__(self) -> TaskRecorder:
        if self._started_ns is not None:
            raise RuntimeError("a TaskRecorder records one run; make a new one")
        self._loop = asyncio.get_running_loop()  # RuntimeError outside a running loop
        self._previous_factory = self._loop.get_task_factory()
        self._loop.set_task_factory(self._factory)
        self._started_ns = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._started_ns is not None
        self._loop.set_task_factory(self._previous_factory)
        self._span = (self._started_ns, time.perf_counter_ns())

    async def __aenter__(self) -> TaskRecorder:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    @property
    def steps(self) -> int:
        """How many task steps were recorded so far."""
        if self._recording is not None:
            return self._steps
        return len(self._buffer) // 3

    def recording(self) -> Trace:
        """One ``run`` span per step of every task, and the loop's ``idle`` spans, as a `Trace`."""
        if self._span is None:
            raise RuntimeError("use the recorder in a `with` block before asking for its recording")
        if self._recording is not None:
            return self._recording
        pid = os.getpid()
        buffer = self._buffer
        names: dict[int, str] = {}
        events: list[Event] = []
        steps = sorted(range(0, len(buffer), 3), key=buffer.__getitem__)
        idle_from, end = self._span
        for index in steps:
            start, stop, proxy = buffer[index], buffer[index + 1], buffer[index + 2]
            lane = names.get(id(proxy))
            if lane is None:
                task = proxy.task
                lane = names[id(proxy)] = task.get_name() if task is not None else "task"
            if start > idle_from:
                events.append(Event(self._loop_lane, "idle", "idle", idle_from, start, pid, None))
            events.append(Event(lane, "run", "run", start, stop, pid, None))
            idle_from = max(idle_from, stop)
        if end > idle_from:
            events.append(Event(self._loop_lane, "idle", "idle", idle_from, end, pid, None))
        self._steps = len(buffer) // 3
        self._buffer = []  # drop the references: finished tasks can now be freed
        self._recording = Trace(events, {pid: self._clock})
        return self._recording
