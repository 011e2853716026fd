"""Export a trace as Chrome trace-event JSON, to open in Perfetto (ui.perfetto.dev) or
chrome://tracing for a deep dive: zoom to a single greenlet switch, search labels, measure spans.

Format: the "JSON Object Format" of the Trace Event Format — one complete event
(``"ph": "X"``) per span, timestamps in microseconds, and metadata events naming each process
and lane.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from ._events import Event, Trace

__all__ = ["to_chrome_trace"]


def to_chrome_trace(trace: Trace | Iterable[Event], path: str | os.PathLike | None = None) -> dict:
    """Return the trace as a Chrome trace-event document, and write it to `path` when given.

    `path` is a file name (``str`` or ``os.PathLike``), never a file descriptor: an int would make
    `open` write to — and then close — that descriptor (0 is the kernel's stdin).
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name (str or os.PathLike) or None, got {path!r}")
    if not isinstance(trace, Trace):
        if isinstance(trace, (str, bytes)) or not isinstance(trace, Iterable):
            raise TypeError(f"trace must be a Trace or a list of Events, got {trace!r}")
        trace = Trace().extend(trace)
    origin = trace.start_ns
    lanes = trace.lanes()
    tid = {lane: i + 1 for i, lane in enumerate(lanes)}
    pid_of_lane = {e.lane: e.pid or 0 for e in trace}
    records: list[dict] = []
    for pid in sorted(set(pid_of_lane.values())):
        records.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                        "args": {"name": f"pid {pid}" if pid else "workers"}})
    for lane in lanes:
        records.append({"name": "thread_name", "ph": "M", "pid": pid_of_lane[lane],
                        "tid": tid[lane], "args": {"name": lane}})
        records.append({"name": "thread_sort_index", "ph": "M", "pid": pid_of_lane[lane],
                        "tid": tid[lane], "args": {"sort_index": tid[lane]}})
    for e in trace:
        records.append({
            "name": e.label or e.kind,
            "cat": e.kind,
            "ph": "X",
            "ts": (e.start_ns - origin) / 1000,
            "dur": e.duration_ns / 1000,
            "pid": e.pid or 0,
            "tid": tid[e.lane],
            "args": {"cpu": e.cpu, "kind": e.kind},
        })
    document = {"traceEvents": records, "displayTimeUnit": "ms"}
    if path is not None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(document, out)
    return document
