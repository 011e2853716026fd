"""The greenlet recorder: every switch between greenlets of one thread, turned into run spans.

greenlet calls a trace function on each switch with ``(event, (origin, target))``. The recorder's
function does the least it can there — one clock read and two appends to one list, the appends
being the specialised ``list.append`` the interpreter runs without a call — and the spans are built
afterwards::

    switch events (time, target)          spans, one lane per greenlet
    t0 -> film                            film  [t0, t1)  run
    t1 -> hub                             hub   [t1, t2)  idle   (waiting on the event loop)
    t2 -> rice                            rice  [t2, t3)  run
    ...

What the hot path avoids, and why (each measured on the sleep(0) ping-pong in ``bench/coroutines``):

- no tuple per event: a tuple holding a greenlet is tracked by the garbage collector, and keeping
  thousands of them alive makes every collection walk them;
- no ``array.append``: converting the clock's int into a C ``long long`` and freeing it costs more
  than keeping the int (ints are not tracked by the collector either);
- no bound-method call: ``buffer.append(x)`` on a list is specialised by CPython 3.11+, while a
  stored ``buffer.append`` is a real call.

The floor is greenlet's own trace path (it builds two tuples and calls through
``PyObject_CallFunction``): a trace function that does nothing costs about as much as everything
the recorder adds. ``make bench`` prints both figures.

Only the thread that enters the recorder is traced (greenlet keeps one trace function per thread),
and the trace function that was there before is kept and still called, so the recorder nests with
a debugger's or gevent's own monitor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import greenlet

from ._events import Event, Trace, clock_pair

__all__ = ["GreenletRecorder"]


def _default_name(glet: Any) -> str:
    if isinstance(glet, greenlet.greenlet) and glet.parent is None:
        return "main"
    name = getattr(glet, "name", None)  # gevent's Greenlet has one; a reader can set it
    if isinstance(name, str) and name:
        return name
    return f"greenlet {id(glet):#x}"


def _hub_type() -> type | None:
    try:
        from gevent.hub import Hub
    except ImportError:  # pragma: no cover - gevent is a dependency; plain greenlets still work
        return None
    return Hub


class GreenletRecorder:
    """Record which greenlet ran when, in the calling thread.

    >>> import gevent
    >>> with GreenletRecorder() as rec:
    ...     gevent.joinall([gevent.spawn(gevent.sleep, 0.01) for _ in range(2)])
    >>> trace = rec.recording()

    Lanes are greenlet names (``Greenlet.name``, settable before the run); the gevent hub's lane is
    ``hub`` and its spans are of kind ``idle``: time in which none of your greenlets ran.
    A recorder records one run; `recording` builds the spans once and then drops its references
    to the greenlets, so finished greenlets can be freed.
    """

    def __init__(self, *, hub_lane: str = "hub", name: Callable[[Any], str] = _default_name):
        self._hub_lane = hub_lane
        self._name = name
        # Interleaved [time, target, time, target, …]: one list, two specialised appends per switch.
        self._buffer: list[Any] = []
        self._previous: Any = None
        self._first: tuple[int, Any] | None = None
        self._end_ns: int | None = None
        self._recording: Trace | None = None
        self._clock = clock_pair()

    def __enter__(self) -> GreenletRecorder:
        if self._first is not None:
            raise RuntimeError("a GreenletRecorder records one run; make a new one")
        previous = greenlet.gettrace()

        if previous is None:

            def trace(event: str, args: tuple, _buf=self._buffer, _now=time.perf_counter_ns):
                _buf.append(_now())
                _buf.append(args[1])

        else:

            def trace(event: str, args: tuple, _buf=self._buffer, _now=time.perf_counter_ns):
                _buf.append(_now())
                _buf.append(args[1])
                previous(event, args)

        self._previous = previous
        self._first = (time.perf_counter_ns(), greenlet.getcurrent())
        greenlet.settrace(trace)
        return self

    def __exit__(self, *exc: object) -> None:
        greenlet.settrace(self._previous)
        self._end_ns = time.perf_counter_ns()

    @property
    def switches(self) -> int:
        """How many switches were recorded so far."""
        if self._recording is not None:
            return self._switches
        return len(self._buffer) // 2

    def recording(self) -> Trace:
        """The run spans of every greenlet (and the hub's idle spans) as a `Trace`."""
        if self._first is None or self._end_ns is None:
            raise RuntimeError("use the recorder in a `with` block before asking for its recording")
        if self._recording is not None:
            return self._recording
        hub_type = _hub_type()
        start, current = self._first
        names: dict[int, tuple[str, str]] = {}
        pid = os.getpid()
        events: list[Event] = []
        buffer = self._buffer
        buffer += (self._end_ns, None)
        for index in range(0, len(buffer), 2):
            when = buffer[index]
            if when > start:
                key = id(current)
                lane_kind = names.get(key)
                if lane_kind is None:
                    is_hub = hub_type is not None and isinstance(current, hub_type)
                    lane_kind = names[key] = (
                        (self._hub_lane, "idle") if is_hub else (self._name(current), "run")
                    )
                lane, kind = lane_kind
                events.append(Event(lane, kind, kind, start, when, pid, None))
            start, current = when, buffer[index + 1]
        self._switches = len(buffer) // 2 - 1
        self._buffer = []  # drop the references: finished greenlets can now be freed
        self._first = (self._first[0], None)
        self._recording = Trace(events, {pid: self._clock})
        return self._recording
