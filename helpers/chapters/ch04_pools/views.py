"""Chapter 04's bookkeeping around the pool calls a cell writes out: not the lesson, its display.

    pool.map_async(Traced(cpu_task), items).get(timeout)   (written in the cell: the lesson)
        └─> [TracedResult(value, recording), ...]
              ──> values_and_trace ──> (values, Trace) ──> plot_timeline, work_per_worker
    os.getloadavg(), usable_cores() ──> busy_machine_note: "these times measure other programs"
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from helpers.course import usable_cores
from helpers.timeline import Trace, TracedResult

__all__ = ["busy_machine_note", "values_and_trace", "work_per_worker"]


def values_and_trace(results: Sequence[Any]) -> tuple[list[Any], Trace]:
    """The plain values of `Traced` results, in order, and one `Trace` of every worker's spans."""
    if isinstance(results, (str, bytes)) or not isinstance(results, Sequence):
        raise TypeError(f"results must be the list a pool returned for Traced(fn), got "
                        f"{type(results).__name__}")
    trace, values = Trace(), []
    for result in results:
        if not isinstance(result, TracedResult):
            raise TypeError(f"results must hold the TracedResult of Traced(fn), got "
                            f"{type(result).__name__}")
        trace.extend(result.recording)
        values.append(result.value)
    return values, trace


def work_per_worker(trace: Trace) -> list[float]:
    """Seconds of work each worker lane recorded, largest first."""
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a Trace, got {type(trace).__name__}")
    return sorted((round(trace.busy_ns(lane) / 1e9, 3) for lane in trace.lanes()), reverse=True)


def busy_machine_note() -> str:
    """A warning when other programs keep every core busy (then times measure them too), else ""."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # not on Windows
    cores = usable_cores()
    if load is None or load < cores:
        return ""
    return (f"(the load average is {load:.1f} on {cores} usable cores: other programs share the "
            "cores, so these times measure them as well — run it again on a quiet machine)")
