"""What recording asyncio tasks costs: `helpers.timeline.TaskRecorder` against the same tasks
untraced, side by side in one run.

``python -m bench asyncio_tasks`` measures:

- the ``asyncio.sleep(0)`` ping-pong between two tasks (one step per sleep and nothing else: the
  worst case for a recorder), untraced, recorded, and under a no-op instrumentation (a task
  factory whose proxy only forwards each step, without reading the clock): the proxy's own call
  is the floor any per-step recorder pays. Bar: ``asyncio_trace_overhead`` (recorded /
  untraced) ≤ 1.3; ``asyncio_trace_vs_noop_floor`` (recorded / the no-op, same rounds) is shown
  beside it, the alternative measure should the floor itself rise above 1.3 on some machine;
- 10,000 tasks sleeping 1 s, recorded against untraced: ``tasks_10k_trace_overhead`` ≤ 1.05.

Ping-pong figures are medians over rounds of untraced, the two instrumented runs (rotating which
goes first) and untraced again, in process CPU time, so other programs shift every side alike.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Coroutine
from typing import Any

from helpers.timeline import TaskRecorder

__all__ = ["measure", "pingpong_ratios", "sleepers_ratio"]

# 4,000 sleeps per task: ~30 ms of ping-pong, long against the CPU clock's resolution and the
# loop's start, short enough to interleave many rounds.
_SLEEPS = 4_000
# 31 rounds (~4 s): the median moves by about 0.02 between runs on a quiet machine.
_ROUNDS = 31
_SIDES = ("recorder", "no-op")
# The chapter-scale sleepers: 10,000 tasks, each sleeping 1 s; three pairs take about 7 s.
_TASKS, _SLEEP_SECONDS, _PAIRS = 10_000, 1.0, 3


class _Forward(Coroutine):
    """The no-op instrumentation: a proxy that forwards every step and records nothing."""

    __slots__ = ("_coro",)

    def __init__(self, coro: Coroutine) -> None:
        self._coro = coro

    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, *exc: Any) -> Any:
        return self._coro.throw(*exc)

    def close(self) -> None:
        self._coro.close()

    def __await__(self):
        return self


def _forwarding_factory(loop, coro, **kwargs):
    return asyncio.Task(_Forward(coro), loop=loop, **kwargs)


async def _player(sleeps: int) -> None:
    sleep = asyncio.sleep
    for _ in range(sleeps):
        await sleep(0)


async def _pingpong(side: str, sleeps: int) -> int:
    loop = asyncio.get_running_loop()
    started = time.process_time_ns()
    if side == "recorder":
        async with TaskRecorder():
            await asyncio.gather(_player(sleeps), _player(sleeps))
    elif side == "no-op":
        loop.set_task_factory(_forwarding_factory)
        try:
            await asyncio.gather(_player(sleeps), _player(sleeps))
        finally:
            loop.set_task_factory(None)
    else:
        await asyncio.gather(_player(sleeps), _player(sleeps))
    return time.process_time_ns() - started


async def _rounds(rounds: int, sleeps: int) -> dict[str, float]:
    await _pingpong("untraced", sleeps)  # warm up: the specialising interpreter, the loop
    ratios: dict[str, list[float]] = {name: [] for name in (*_SIDES, "recorder vs floor")}
    for index in range(rounds):
        before = await _pingpong("untraced", sleeps)
        order = _SIDES[index % 2:] + _SIDES[:index % 2]
        measured = {side: await _pingpong(side, sleeps) for side in order}
        untraced = max((before + await _pingpong("untraced", sleeps)) / 2, 1)
        for side in _SIDES:
            ratios[side].append(measured[side] / untraced)
        ratios["recorder vs floor"].append(measured["recorder"] / max(measured["no-op"], 1))
    return {name: statistics.median(values) for name, values in ratios.items()}


def pingpong_ratios(*, rounds: int = _ROUNDS, sleeps: int = _SLEEPS) -> dict[str, float]:
    """Medians over `rounds`: ``"recorder"`` and ``"no-op"`` (x untraced), and ``"recorder vs
    floor"`` (x the no-op, same round)."""
    return asyncio.run(_rounds(rounds, sleeps))


async def _sleepers(count: int, seconds: float, recorded: bool) -> float:
    started = time.perf_counter()
    if recorded:
        async with TaskRecorder() as recorder:
            await asyncio.gather(*(asyncio.create_task(asyncio.sleep(seconds))
                                   for _ in range(count)))
        if recorder.steps < 2 * count:
            raise RuntimeError(f"{recorder.steps} steps recorded for {count} sleepers")
    else:
        await asyncio.gather(*(asyncio.create_task(asyncio.sleep(seconds)) for _ in range(count)))
    return time.perf_counter() - started


def sleepers_ratio(count: int = _TASKS, seconds: float = _SLEEP_SECONDS,
                   pairs: int = _PAIRS) -> tuple[float, float]:
    """(median recorded / untraced, median untraced wall time) for `count` sleeping tasks."""
    ratios, plain_times = [], []
    for _ in range(pairs):
        plain = asyncio.run(_sleepers(count, seconds, recorded=False))
        traced = asyncio.run(_sleepers(count, seconds, recorded=True))
        ratios.append(traced / plain)
        plain_times.append(plain)
    return statistics.median(ratios), statistics.median(plain_times)


def measure(report) -> None:
    ratios = pingpong_ratios()
    report("asyncio_trace_overhead", ratios["recorder"], "x untraced (sleep(0) ping-pong)",
           "<= 1.3", baseline="the same ping-pong untraced, in the same rounds")
    report("asyncio_trace_vs_noop_floor", ratios["recorder vs floor"],
           "x a forwarding proxy that records nothing (the floor)")
    report("asyncio_trace_floor_noop", ratios["no-op"], "x untraced (a proxy's own cost)")
    ratio, untraced = sleepers_ratio()
    report("tasks_10k_trace_overhead", ratio, "x untraced (10,000 tasks sleeping 1 s)", "<= 1.05",
           baseline="the same tasks untraced, alternated (tasks_10k_untraced)")
    report("tasks_10k_untraced", untraced, "s (the same tasks untraced)")
