"""Chapter 05's figures: what tracing greenlets costs, and 10,000 greenlets sleeping at once.

``python -m bench coroutines`` measures, side by side in one run:

- the ``gevent.sleep(0)`` ping-pong between two greenlets (two switches per sleep, nothing else:
  the worst case for a tracer), untraced and under three trace functions — `GreenletRecorder`,
  a C no-op (``dict().__setitem__``) and a Python no-op. The no-ops cost what greenlet's own trace
  path costs, whatever the trace function does: about 1.3x untraced, so no tracer built on
  ``greenlet.settrace`` can get under that. The bar is therefore stated against that floor:
  ``greenlet_trace_vs_noop_floor`` (recorder / C no-op, in the same rounds) ≤ 1.15;
  ``greenlet_trace_overhead`` (recorder / untraced) and the two floors are shown beside it;
- the chapter's ``sleepers`` demo (10,000 greenlets sleeping 1 s, traced) against the same
  greenlets untraced: ``sleepers_10k_trace_overhead`` ≤ 1.05. The traced and untraced seconds
  are shown beside it without a bar of their own: gevent's own time for the untraced greenlets
  (spawning 10,000 and starting each one's timer takes a few tenths of a second on a slow core,
  all of it before the last 1 s sleep begins) is the floor, and only the ratio to it says what
  the recorder costs (an absolute 1.25 s bar was missed on machines where the floor alone
  reached 1.24 s).

Every ping-pong figure is the median over rounds; a round runs untraced, the three tracers
(rotating which goes first) and untraced again, timed in process CPU time, so other programs on
a shared machine shift every side of a round alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import gevent
import greenlet

from helpers.chapters.ch05_coroutines import sleepers
from helpers.timeline import GreenletRecorder

__all__ = ["measure", "pingpong_ratios", "sleepers_ratio"]

# 4,000 sleeps per greenlet is ~15 ms of ping-pong: short enough to interleave many rounds, long
# enough that the CPU clock's resolution (~1 µs) and the spawn/join cost are below 1 %.
_SLEEPS = 4_000
# 41 rounds (~3 s): the median of that many moves by less than 0.02 between runs on a quiet machine.
_ROUNDS = 41
_TRACERS = ("recorder", "C no-op", "python no-op")
# The chapter's scale: 10,000 greenlets, each sleeping 1 s; three pairs keep this part under 8 s.
_SLEEPERS, _SLEEP_SECONDS, _SLEEPER_PAIRS = 10_000, 1.0, 3


def _player(sleeps: int) -> None:
    sleep = gevent.sleep
    for _ in range(sleeps):
        sleep(0)


def _pingpong_ns(sleeps: int) -> int:
    started = time.process_time_ns()
    gevent.joinall([gevent.spawn(_player, sleeps), gevent.spawn(_player, sleeps)], timeout=60)
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


def pingpong_ratios(*, rounds: int = _ROUNDS, sleeps: int = _SLEEPS) -> dict[str, float]:
    """Medians over `rounds`: each tracer's CPU time / untraced, and the recorder / the C no-op.

    Keys: ``"recorder"``, ``"C no-op"``, ``"python no-op"`` (x untraced) and ``"recorder vs
    floor"`` (x the C no-op tracer, both from the same round).
    """
    _pingpong_ns(sleeps)  # warm up: first spawns, the hub, the specialising interpreter
    ratios: dict[str, list[float]] = {name: [] for name in (*_TRACERS, "recorder vs floor")}
    for index in range(rounds):
        before = _pingpong_ns(sleeps)
        shift = index % len(_TRACERS)
        traced = {name: _traced_pingpong_ns(name, sleeps)
                  for name in _TRACERS[shift:] + _TRACERS[:shift]}
        untraced = max((before + _pingpong_ns(sleeps)) / 2, 1)
        for name in _TRACERS:
            ratios[name].append(traced[name] / untraced)
        ratios["recorder vs floor"].append(traced["recorder"] / max(traced["C no-op"], 1))
    return {name: statistics.median(values) for name, values in ratios.items()}


def _untraced_sleepers(count: int, seconds: float) -> float:
    """The chapter's `sleepers` body without the recorder, timed the same way (wall time)."""
    started = time.perf_counter()
    glets = [gevent.spawn(gevent.sleep, seconds) for _ in range(count)]
    gevent.joinall(glets, timeout=seconds + 60)
    if sum(g.successful() for g in glets) != count:
        raise RuntimeError("not every untraced sleeper finished")
    return time.perf_counter() - started


def sleepers_ratio(count: int = _SLEEPERS, seconds: float = _SLEEP_SECONDS,
                   pairs: int = _SLEEPER_PAIRS) -> tuple[float, float, float]:
    """(median traced wall time, median traced / untraced, median untraced wall time) of the
    chapter's `sleepers` demo."""
    traced_times, plain_times, ratios = [], [], []
    for _ in range(pairs):
        plain = _untraced_sleepers(count, seconds)
        run = sleepers(count, seconds)
        if run.value != count:
            raise RuntimeError(f"{run.value} of {count} traced sleepers finished")
        traced_times.append(run.seconds)
        plain_times.append(plain)
        ratios.append(run.seconds / plain)
    return statistics.median(traced_times), statistics.median(ratios), \
        statistics.median(plain_times)


def measure(report) -> None:
    ratios = pingpong_ratios()
    report("greenlet_trace_vs_noop_floor", ratios["recorder vs floor"],
           "x a no-op C trace function (sleep(0) ping-pong)", "<= 1.15",
           baseline="the same ping-pong under a C no-op trace function, in the same rounds")
    report("greenlet_trace_overhead", ratios["recorder"], "x untraced (sleep(0) ping-pong)")
    report("greenlet_trace_floor_c_noop", ratios["C no-op"], "x untraced (greenlet's own floor)")
    report("greenlet_trace_floor_python_noop", ratios["python no-op"], "x untraced")
    traced, ratio, untraced = sleepers_ratio()
    report("sleepers_10k_trace_overhead", ratio, "x untraced (gevent's own floor)", "<= 1.05",
           baseline="the same greenlets untraced, alternated (sleepers_10k_untraced)")
    report("sleepers_10k_traced", traced, "s (10,000 greenlets sleeping 1 s, traced)")
    # gevent's own floor: spawning 10,000 greenlets and starting each one's timer, untraced,
    # before the 1 s of sleep.
    report("sleepers_10k_untraced", untraced, "s (the same greenlets untraced: gevent's floor)")
