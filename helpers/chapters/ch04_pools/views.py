"""Chapter 04's bookkeeping around the pool calls a cell writes out: not the lesson, its display.

    pool.map_async(Traced(cpu_task), items).get(timeout)   (written in the cell: the lesson)
        └─> [TracedResult(value, recording), ...]
              ──> values_and_trace ──> (values, Trace) ──> plot_timeline
                                                       ──> core_seconds(trace, cores):
                                                           each worker's time on a core
                                                       ──> work_per_worker, workers_computing
    usable_cores(), os.getloadavg() ──> busy_machine_note: "one core here" or "these times
                                        measure other programs", else ""

A worker's ``run`` span is wall time: on fewer cores than workers, the workers in progress
together take turns, and summing their spans would count one core's second several times (two
workers time-sliced on one core would show "2 workers computing"). `core_seconds` counts only
time on distinct cores: while k workers compute at once on c < k cores, each is credited c/k.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from helpers.course import check_float, check_int, one_core_note, usable_cores
from helpers.timeline import Trace, TracedResult

__all__ = ["busy_machine_note", "core_seconds", "values_and_trace", "work_per_worker",
           "workers_computing"]

# More cores than any machine the course runs on has: a larger `cores` is a mistake.
_MAX_CORES = 4096
# A day: no run of the course lasts longer; a larger wall time is a unit mistake (ns for s).
_MAX_WALL_SECONDS = 86_400.0


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
        trace.extend(result)  # its events and clocks, no Trace built per task
        values.append(result.value)
    return values, trace


def _check_trace(trace: object) -> Trace:
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a Trace, got {type(trace).__name__}")
    return trace


def core_seconds(trace: Trace, cores: int | None = None) -> dict[str, float]:
    """Seconds each lane computed on a core, counting only `cores` lanes at a time.

    While k lanes are in ``run`` spans at once and the process may use c < k cores (`cores`,
    default `usable_cores()`), they take turns and each is credited c/k of that time. So the
    lanes' seconds add up to at most `cores` times the wall time: on one core, to the time some
    lane was computing.
    """
    trace = _check_trace(trace)
    cores = usable_cores() if cores is None else check_int("cores", cores, 1, _MAX_CORES)
    edges = []
    for e in trace.select(kind="run"):
        if e.end_ns > e.start_ns:
            edges += [(e.start_ns, 1, e.lane), (e.end_ns, -1, e.lane)]
    edges.sort(key=lambda edge: (edge[0], edge[1]))  # a span ending where another starts: first
    credit = dict.fromkeys(trace.lanes(), 0.0)
    running: dict[str, int] = {}  # lane -> spans in progress (a lane's spans never overlap)
    previous = 0
    for at, step, lane in edges:
        if running and at > previous:
            share = min(1.0, cores / len(running)) * (at - previous)
            for name in running:
                credit[name] += share
        previous = at
        running[lane] = running.get(lane, 0) + step
        if not running[lane]:
            del running[lane]
    return {lane: ns / 1e9 for lane, ns in credit.items()}


def work_per_worker(trace: Trace, cores: int | None = None) -> list[float]:
    """Seconds of work each worker lane did on a core (`core_seconds`), largest first."""
    return sorted((round(s, 3) for s in core_seconds(trace, cores).values()), reverse=True)


def workers_computing(trace: Trace, seconds: float, cores: int | None = None) -> float:
    """How many workers were computing on average over `seconds` of wall time: their time on
    distinct cores (`core_seconds`) over the wall time, so never more than the cores."""
    check_float("seconds", seconds, 0.0, _MAX_WALL_SECONDS)
    total = sum(core_seconds(trace, cores).values())
    return total / seconds if seconds > 0 else 0.0


def busy_machine_note(with_more: str | None = None) -> str:
    """What limits the figures just printed on this machine, or "" when nothing does.

    One core (the affinity mask allows one): the workers take turns on it, whatever the load;
    `with_more` says what the reader would see with more cores. Several cores but a load average
    at or above them: the times measure the other programs as well.
    """
    if with_more is not None and (not isinstance(with_more, str) or not with_more.strip()):
        raise ValueError(f"with_more must be a sentence or None, got {with_more!r:.80}")
    cores = usable_cores()
    if cores == 1:
        return one_core_note("the workers take turns on it and together compute no faster than "
                             "one", with_more or "each worker would compute on a core of its "
                             "own, at the same time as the others", cores=1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # not on Windows
    if load is None or load < cores:
        return ""
    return (f"(the load average is {load:.1f} on {cores} usable cores: other programs share the "
            "cores, so these times measure them as well — run it again on a quiet machine)")
