"""The event model: one `Event` per span of time a worker spent doing one kind of thing.

Every recorder in the course (processes, threads, greenlets, Dask workers) produces the same
`Event`, and a `Trace` is just a list of them plus one clock pair per process, so every drawing,
export and test works on every kind of worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["KINDS", "Event", "Trace"]

# The fixed set of kinds: one colour each on a timeline, so a reader learns them once.
KINDS = (
    "run",  # computing on a core
    "io",  # blocked in I/O or a sleep: the core is free for others
    "wait",  # waiting for a result, a message or a join
    "lock",  # waiting to acquire a lock
    "send",  # moving data between processes (pickling, copying)
    "start",  # a process or worker starting up
    "idle",  # nothing to do (the gevent hub waiting on its event loop)
    "switch",  # a greenlet switch (an instant, drawn as a thin tick)
)


def _field_error(name: str, expected: str, value: object) -> ValueError:
    return ValueError(f"Event field {name!r} must be {expected}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Event:
    """One span on the timeline.

    >>> Event("worker 1", "task 3", "run", 1_000, 2_000).duration_ns
    1000

    ``start_ns``/``end_ns`` come from `time.perf_counter_ns()`, which is one system-wide clock on
    Linux, macOS and Windows from Python 3.10, so spans from different processes line up.
    ``cpu`` is the core the span ended on where the OS tells (Linux), else ``None``.
    """

    lane: str
    label: str
    kind: str
    start_ns: int
    end_ns: int
    pid: int | None = None
    cpu: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.lane, str) or not self.lane:
            raise _field_error("lane", "a non-empty string", self.lane)
        if not isinstance(self.label, str):
            raise _field_error("label", "a string", self.label)
        if self.kind not in KINDS:
            raise _field_error("kind", f"one of {', '.join(KINDS)}", self.kind)
        for name in ("start_ns", "end_ns"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _field_error(name, "a non-negative integer (nanoseconds)", value)
        if self.end_ns < self.start_ns:
            raise _field_error("end_ns", f"at least start_ns={self.start_ns}", self.end_ns)
        for name in ("pid", "cpu"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise _field_error(name, "a non-negative integer or None", value)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def __reduce__(self):
        # A plain tuple of fields, rebuilt without re-validating: an Event was checked when it
        # was made, and the default pickling of a frozen slots dataclass costs several times more
        # (it is most of the per-span cost of a pool task).
        return rebuild_event, (self.lane, self.label, self.kind, self.start_ns, self.end_ns,
                                self.pid, self.cpu)


_EVENT_FIELDS = ("lane", "label", "kind", "start_ns", "end_ns", "pid", "cpu")
# Each slot's own setter, looked up once: a frozen Event refuses setattr, and going through
# object.__setattr__ field by field costs three times as much (this runs once per span unpickled).
_SET_LANE, _SET_LABEL, _SET_KIND, _SET_START, _SET_END, _SET_PID, _SET_CPU = (
    getattr(Event, name).__set__ for name in _EVENT_FIELDS)
_new_object = object.__new__


def rebuild_event(lane, label, kind, start_ns, end_ns, pid, cpu) -> Event:
    """An `Event` from fields that were checked where it was first made (unpickling, a recording's
    rows): no validation, a third of the cost of the constructor."""
    event = _new_object(Event)
    _SET_LANE(event, lane)
    _SET_LABEL(event, label)
    _SET_KIND(event, kind)
    _SET_START(event, start_ns)
    _SET_END(event, end_ns)
    _SET_PID(event, pid)
    _SET_CPU(event, cpu)
    return event


# Tries at a tight clock pair: one of three is nearly always unpreempted, and each costs ~0.1 µs.
_CLOCK_PAIR_TRIES = 3


def clock_pair(perf=time.perf_counter_ns, epoch_clock=time.time_ns) -> tuple[int, int]:
    """A ``(perf_counter_ns, time_ns)`` pair read at one instant, to map spans to the epoch.

    The two clocks cannot be read at once: the epoch read is bracketed by two perf reads and the
    tightest of a few brackets is kept, its midpoint paired with the epoch. A process preempted
    between two reads (as on a busy machine) would otherwise shift every span it maps by as long
    as it waited. (`perf` and `epoch_clock` are the two clocks; a test passes its own.)
    """
    best = None
    for _ in range(_CLOCK_PAIR_TRIES):
        before = perf()
        epoch = epoch_clock()
        after = perf()
        if best is None or after - before < best[0]:
            best = (after - before, (before + after) // 2, epoch)
    return best[1], best[2]


@dataclass
class Trace:
    """The events of one run, from any number of workers.

    ``clocks`` maps a pid to one ``(perf_counter_ns, time_ns)`` pair sampled in that process, so
    sources timed by the wall clock (Dask's task stream) can be merged onto the same axis.
    """

    events: list[Event] = field(default_factory=list)
    clocks: dict[int, tuple[int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def add(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise ValueError(f"a Trace holds Event objects, got {type(event).__name__}")
        self.events.append(event)

    def extend(self, events: Iterable[Event]) -> Trace:
        """Add events, or a whole recording (anything with ``.events`` and ``.clocks``)."""
        clocks = getattr(events, "clocks", None)
        if clocks:
            self.clocks.update(clocks)
        append = self.events.append  # `add` inlined: a pool run extends once per task
        for event in getattr(events, "events", events):
            if not isinstance(event, Event):
                raise ValueError(f"a Trace holds Event objects, got {type(event).__name__}")
            append(event)
        return self

    # -- questions a chapter or a test asks of a run -------------------------------------------
    @property
    def start_ns(self) -> int:
        return min((e.start_ns for e in self.events), default=0)

    @property
    def end_ns(self) -> int:
        return max((e.end_ns for e in self.events), default=0)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def lanes(self) -> list[str]:
        """Lane names, in order of each lane's first event (the order they are drawn in)."""
        first: dict[str, int] = {}
        for e in self.events:
            if e.lane not in first or e.start_ns < first[e.lane]:
                first[e.lane] = e.start_ns
        return sorted(first, key=lambda lane: (first[lane], lane))

    def select(self, *, lane: str | None = None, kind: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if (lane is None or e.lane == lane) and (kind is None or e.kind == kind)
        ]

    def busy_ns(self, lane: str, kind: str = "run") -> int:
        """Total time `lane` spent in `kind` (spans of one lane never overlap)."""
        return sum(e.duration_ns for e in self.select(lane=lane, kind=kind))

    def overlap_ns(self, lane_a: str, lane_b: str, kind: str = "run") -> int:
        """How long `lane_a` and `lane_b` were both in `kind` at once: parallelism, measured."""
        spans_a = sorted((e.start_ns, e.end_ns) for e in self.select(lane=lane_a, kind=kind))
        spans_b = sorted((e.start_ns, e.end_ns) for e in self.select(lane=lane_b, kind=kind))
        total, i, j = 0, 0, 0
        while i < len(spans_a) and j < len(spans_b):
            start = max(spans_a[i][0], spans_b[j][0])
            end = min(spans_a[i][1], spans_b[j][1])
            total += max(0, end - start)
            if spans_a[i][1] < spans_b[j][1]:
                i += 1
            else:
                j += 1
        return total

    def cpus(self, lane: str) -> list[int]:
        """The cores a lane ran on, most-used first (empty where the OS does not tell)."""
        time_on: dict[int, int] = {}
        for e in self.select(lane=lane):
            if e.cpu is not None:
                time_on[e.cpu] = time_on.get(e.cpu, 0) + e.duration_ns
        return sorted(time_on, key=lambda cpu: -time_on[cpu])
