"""What every part of chapter 02 shares: children that always stop, compact spans, sizes, tables.

Two ways to run children, both leaving nothing behind::

    with started(ctx.Process(target=f, args=(q,))) as p:     the notebook's own cells: start,
        ... q.get(timeout=10) ...                             then on leaving join (bounded) and
                                                              terminate/kill whatever is still alive
    with ProcessGroup(start_method, ...) as group:            the measured demos, through the
        group.start(f, args, lane="sender")                   course's runner: each child runs
        run = group.wait(timeout)                             f(*args) -> TracedResult and reports
      child i ──TracedResult (value, spans)──> its own pipe   once ──> Run(values, failures, trace)

A child's spans come from a `SpanLog`, which keeps them at the resolution a timeline can show,
so 100,000 messages make a few hundred spans rather than 200,000.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from helpers.course import (
    available_start_methods,
    check_float,
    check_int,
    check_timeout,
    quiet_fork_warnings,
)
from helpers.runners import stop_processes
from helpers.timeline import Recorder, Trace

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "SIZE_NAMES",
    "SpanLog",
    "Table",
    "format_bytes",
    "format_rate",
    "parse_size",
    "started",
]

# The longest a chapter 02 demo should take is ~10 s; a wait 6× longer means something is stuck.
DEFAULT_TIMEOUT_SECONDS = 60.0
# A span log keeps time in bins of this size: a timeline of a 0.25–10 s run is drawn ~1,000 px
# wide, 0.25 ms or more per pixel, so finer detail could not be seen; and a lane of a 10 s run
# holds at most 40,000 spans.
_BIN_NS = 250_000

# Binary units, largest first: sizes of messages and buffers are powers of two.
_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1))
# The message sizes the chapter talks about, by name (the panel's choices).
SIZE_NAMES = ("64 B", "1 KiB", "16 KiB", "256 KiB", "1 MiB", "4 MiB", "16 MiB", "64 MiB")


def parse_size(name: str) -> int:
    """``"16 KiB"`` -> 16384. Raises ValueError naming the parameter for anything else."""
    try:
        number, unit = str(name).split()
        return int(number) * dict(_UNITS)[unit]
    except (ValueError, KeyError):
        raise ValueError(f"message_size must be one of {', '.join(SIZE_NAMES)}, "
                         f"got {name!r}") from None


# The largest amount the formatters accept: far above any size or rate one machine shows.
_MAX_FORMATTED = 5e11


def format_bytes(n: float) -> str:
    """1048576 -> '1 MiB'; 1536 -> '1.5 KiB'."""
    n = check_float("n", n, 0, _MAX_FORMATTED)
    for unit, scale in _UNITS:
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.3g} B"


def format_rate(bytes_per_second: float) -> str:
    """Bytes per second in GB/s or MB/s (decimal: what bandwidth figures are quoted in)."""
    bytes_per_second = check_float("bytes_per_second", bytes_per_second, 0, _MAX_FORMATTED)
    if bytes_per_second >= 1e9:
        return f"{bytes_per_second / 1e9:.3g} GB/s"
    return f"{bytes_per_second / 1e6:.3g} MB/s"


class Table(list):
    """Rows (dicts with the same keys) that show as a table in a notebook and as text elsewhere."""

    def _repr_html_(self) -> str:
        import html

        if not self:
            return "<p>(no rows)</p>"
        head = "".join(f"<th style='text-align:left'>{html.escape(str(k))}</th>" for k in self[0])
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(v))}</td>"
                             for v in row.values()) + "</tr>"
            for row in self)
        return f"<table><tr>{head}</tr>{body}</table>"

    def __repr__(self) -> str:
        if not self:
            return "(no rows)"
        keys = list(self[0])
        cells = [[str(k) for k in keys]] + [[str(row[k]) for k in keys] for row in self]
        widths = [max(len(r[i]) for r in cells) for i in range(len(keys))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                         for r in cells)


class SpanLog:
    """The spans of one lane, kept at the timeline's resolution: cheap to call once per message.

    Time is cut into bins of `bin_ns`. Within a bin, the time of each kind is added up and drawn
    as one span per kind, in the order the kinds first appeared there; spans of one kind that
    touch across bins become one. The time per kind stays exact, and 100,000 messages give at most
    a few spans per bin — what a 1,000-pixel timeline can show anyway — instead of 200,000.

    >>> log = SpanLog("demo", bin_ns=1000)
    >>> log.add("get", "wait", 0, 1200); log.add("work", "run", 1200, 1600)
    >>> log.add("work", "run", 1600, 3000)
    >>> [(e.kind, e.start_ns, e.end_ns) for e in log.recording().events]
    [('wait', 0, 1200), ('run', 1200, 3000)]
    """

    def __init__(self, lane: str, *, bin_ns: int = _BIN_NS) -> None:
        self.lane = f"{lane} [pid {os.getpid()}]"
        self._bin_ns = check_int("bin_ns", bin_ns, 1, 10**10)
        self._bins: dict[int, dict[str, int]] = {}  # bin -> kind -> ns spent in it
        self._starts: dict[int, int] = {}  # bin -> first ns recorded in it
        self._labels: dict[str, str] = {}  # kind -> the label last seen for it

    def add(self, label: str, kind: str, start_ns: int, end_ns: int) -> None:
        self._labels[kind] = label
        size = self._bin_ns
        index = start_ns // size
        while True:
            stop = min(end_ns, (index + 1) * size)
            kinds = self._bins.setdefault(index, {})
            kinds[kind] = kinds.get(kind, 0) + stop - start_ns
            self._starts[index] = min(self._starts.get(index, start_ns), start_ns)
            if stop >= end_ns:
                return
            start_ns, index = stop, index + 1

    @contextmanager
    def span(self, label: str, kind: str = "run") -> Iterator[None]:
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self.add(label, kind, start, time.perf_counter_ns())

    def recording(self) -> Trace:
        spans: list[list[Any]] = []  # [kind, start, end]
        for index in sorted(self._bins):
            at = self._starts[index]
            for kind, ns in self._bins[index].items():
                if spans and spans[-1][0] == kind and spans[-1][2] >= at:
                    spans[-1][2] = at + ns
                else:
                    spans.append([kind, at, at + ns])
                at += ns
        recorder = Recorder(self.lane, cpus=False)
        for kind, start, end in spans:
            recorder.add(self._labels[kind], kind, start, end)
        return recorder.recording()


# -- the notebook's own children -------------------------------------------------------------------
@contextmanager
def started(*processes: Any, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[Any]:
    """Start `processes`; on leaving, join them (at most `timeout` s in all), then stop any left.

    Yields the process (or the tuple of them). Whatever happens in the block — an error, a
    ``KeyboardInterrupt`` — no child outlives it.
    """
    timeout = check_timeout("timeout", timeout)
    begun: list[Any] = []
    try:
        quiet = "fork" if "fork" in available_start_methods() else "spawn"
        with quiet_fork_warnings(quiet):  # captures the fork warning; nothing else
            for process in processes:
                process.start()
                begun.append(process)
        yield processes[0] if len(processes) == 1 else processes
        deadline = time.perf_counter() + timeout
        for process in begun:
            process.join(max(0.0, deadline - time.perf_counter()))
    finally:
        stop_processes(begun)
