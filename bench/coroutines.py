"""Chapter 05's figures: what tracing greenlets costs, and 10,000 greenlets sleeping at once.

``python -m bench coroutines`` prints, measured side by side in one run:

- ``greenlet_trace_overhead``: a ``gevent.sleep(0)`` ping-pong between two greenlets (two switches
  per sleep, nothing else), traced by `GreenletRecorder` vs untraced — the worst case for a tracer;
- the same ping-pong with a Python no-op and a C no-op (``dict().__setitem__``) as trace function:
  the floor that greenlet's own trace path sets, whatever the recorder does;
- ``sleepers_10k``: 10,000 traced greenlets each sleeping 1 s, and the ratio to the same run
  untraced.

Ratios are the median of pairs measured back to back (untraced, traced, untraced), in process CPU
time for the ping-pong: other programs on a shared machine then shift both sides of a pair alike.
`pingpong_overhead` is imported by ``bench/foundation.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import gevent
import greenlet

from helpers.timeline import GreenletRecorder

__all__ = ["measure", "pingpong_overhead", "pingpong_ratios", "sleepers_ratio"]

# 4,000 sleeps per greenlet is ~15 ms of ping-pong: short enough to interleave many pairs, long
# enough that the CPU clock's resolution (~1 µs) and the spawn/join cost are below 1 %.
_SLEEPS = 4_000
# 41 pairs: the median of that many pairs moves by less than 0.02 between runs on a quiet machine.
_PAIRS = 41
_TRACERS = ("recorder", "python no-op", "C no-op")


def _player(sleeps: int) -> None:
    sleep = gevent.sleep
    for _ in range(sleeps):
        sleep(0)


def _pingpong_ns(sleeps: int) -> int:
    started = time.process_time_ns()
    gevent.joinall([gevent.spawn(_player, sleeps), gevent.spawn(_player, sleeps)])
    return time.process_time_ns() - started


def _python_noop(event: str, args: tuple) -> None:
    pass


def _traced_pingpong_ns(tracer: str, sleeps: int) -> int:
    if tracer == "recorder":
        with GreenletRecorder():
            return _pingpong_ns(sleeps)
    function: Callable[..., Any] = _python_noop if tracer == "python no-op" else {}.__setitem__
    previous = greenlet.settrace(function)
    try:
        return _pingpong_ns(sleeps)
    finally:
        greenlet.settrace(previous)


def pingpong_ratios(*, pairs: int = _PAIRS, sleeps: int = _SLEEPS) -> dict[str, float]:
    """Traced / untraced CPU time of the sleep(0) ping-pong, per tracer, interleaved."""
    _pingpong_ns(sleeps)  # warm up: first spawns, the hub, the specialising interpreter
    ratios: dict[str, list[float]] = {name: [] for name in _TRACERS}
    for _ in range(pairs):
        for name in _TRACERS:
            before = _pingpong_ns(sleeps)
            traced = _traced_pingpong_ns(name, sleeps)
            after = _pingpong_ns(sleeps)
            ratios[name].append(2 * traced / max(before + after, 1))
    return {name: statistics.median(values) for name, values in ratios.items()}


def pingpong_overhead(*, pairs: int = _PAIRS, sleeps: int = _SLEEPS) -> float:
    """`GreenletRecorder`'s cost on the sleep(0) ping-pong: traced / untraced (median of pairs)."""
    _pingpong_ns(sleeps)
    ratios = []
    for _ in range(pairs):
        before = _pingpong_ns(sleeps)
        traced = _traced_pingpong_ns("recorder", sleeps)
        after = _pingpong_ns(sleeps)
        ratios.append(2 * traced / max(before + after, 1))
    return statistics.median(ratios)


def _sleepers_seconds(count: int, seconds: float, traced: bool) -> float:
    started = time.perf_counter()
    if traced:
        with GreenletRecorder():
            gevent.joinall([gevent.spawn(gevent.sleep, seconds) for _ in range(count)])
    else:
        gevent.joinall([gevent.spawn(gevent.sleep, seconds) for _ in range(count)])
    return time.perf_counter() - started


def sleepers_ratio(
    count: int = 10_000, seconds: float = 1.0, pairs: int = 3
) -> tuple[float, float]:
    """(median traced wall time, median traced / untraced): `count` greenlets × sleep(seconds)."""
    traced_times, ratios = [], []
    for _ in range(pairs):
        plain = _sleepers_seconds(count, seconds, traced=False)
        traced = _sleepers_seconds(count, seconds, traced=True)
        traced_times.append(traced)
        ratios.append(traced / plain)
    return statistics.median(traced_times), statistics.median(ratios)


def measure(report) -> None:
    ratios = pingpong_ratios()
    report("greenlet_trace_overhead", ratios["recorder"], "x untraced", "<= 1.3")
    report("greenlet_trace_floor_python_noop", ratios["python no-op"], "x untraced")
    report("greenlet_trace_floor_c_noop", ratios["C no-op"], "x untraced")
    traced, ratio = sleepers_ratio()
    report("sleepers_10k_traced", traced, "s", "<= 1.25")
    report("sleepers_10k_trace_overhead", ratio, "x untraced", "<= 1.05")
