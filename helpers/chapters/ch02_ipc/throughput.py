"""Moving bytes between two processes: four channels, one interface, measured against memcpy.

Every channel has the same two ends, so one sender and one receiver measure all of them::

    sender process                                               receiver process
    --------------                                               ----------------
    barrier.wait()  ─────────── both start the clock together ──  barrier.wait()
    t0 = now
    for each message:                                             for each message:
      end.wait_send()   "wait"  (shared memory: a free slot)        end.wait_recv()  "wait"
      end.send(data)    "send"  ─────── the channel ───────>        end.recv()       "send"
                                                                  t1 = now
    throughput = bytes / (t1 - t0)       memcpy: numpy.copyto of the same sizes, in the kernel,
                                         into as many buffers as the ring has slots

    Queue          put() hands the object to a feeder thread, which pickles it and writes the
                   bytes into a pipe; get() reads them and unpickles a new object
    Pipe           send_bytes()/recv_bytes(): the bytes through an OS pipe, no pickling
    shared memory  a ring of slots in one SharedMemory block and two semaphores (free, full):
                   the sender copies into a slot, the receiver copies out of it
    Manager        a queue in the manager's server process: every put and get is a round trip

The ends themselves live in `_ends`; this module runs them and measures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from helpers.course import (
    check_choice,
    check_int,
    check_start_method,
    check_timeout,
    mp_context,
)
from helpers.runners import ProcessGroup, release_semaphores
from helpers.timeline import Trace, TracedResult

from ._ends import CHANNELS, MAX_MESSAGE_BYTES, OP_TIMEOUT_SECONDS, open_channels, ring_slots
from .common import DEFAULT_TIMEOUT_SECONDS, SpanLog

__all__ = [
    "CHANNELS",
    "SWEEP_SIZES",
    "Sweep",
    "TransferRun",
    "measure_memcpy",
    "ring_slots",
    "sweep",
    "transfer",
]

# 64 B to 64 MiB in steps of 4: from "one small record" to "a large array", 11 points a decade
# and a half apart on a log axis.
SWEEP_SIZES = tuple(64 * 4**k for k in range(11))
# The most messages and bytes one transfer may move: a typo must not fill the reader's memory or
# keep a cell busy for minutes (2 GiB at ~0.5 GB/s through a Pipe is ~4 s).
MAX_MESSAGES = 200_000
MAX_TOTAL_BYTES = 2 << 30
_MAX_SENDERS = 8  # a few per core: more only queue up for the same cores
_MAX_SLOTS = 8  # memcpy's destination buffers: twice the ring's most, and at most 1 GiB of them
# A plan's steps: the sweep has 11, the bench 9; each shared-memory step has rings of its own.
_MAX_STEPS = 64
# All the rings of one shared-memory transfer together: the panel's largest (4 senders × 2 slots
# × 64 MiB) is half of it; /dev/shm is RAM, and a long plan of big messages must not fill it.
_MAX_RING_BYTES = 1 << 30


# -- the two ends' loops (run in children) --------------------------------------------------------
def _send_loop(name: str, ends: Sequence[Any], plan: Sequence[tuple[int, int]],
               barrier: Any) -> TracedResult:
    """For each (size, count): wait for the receiver, then send `count` messages of `size` bytes."""
    log, starts = SpanLog(name), []
    payload = np.random.default_rng(0).integers(0, 256, max(s for s, _ in plan), np.uint8)
    try:
        for end, (size, count) in zip(ends, plan):
            data = payload[:size].tobytes()  # one bytes object per size, sent `count` times
            end.warm()
            barrier.wait(OP_TIMEOUT_SECONDS)
            starts.append(time.perf_counter_ns())
            for _ in range(count):
                t = time.perf_counter_ns()
                if not end.wait_send():
                    raise TimeoutError("no free slot: the receiver stopped reading")
                u = time.perf_counter_ns()
                end.send(data)
                log.add("wait", "wait", t, u)
                log.add(f"send {size} B", "send", u, time.perf_counter_ns())
    finally:
        for end in set(ends):
            end.close()
    return TracedResult(starts, log.recording())


def _receive_loop(name: str, steps: Sequence[Sequence[Any]], plan: Sequence[tuple[int, int]],
                  barrier: Any) -> TracedResult:
    """For each (size, count): receive `count` messages from each end, round robin; time the end."""
    log, ends_ns, received = SpanLog(name), [], []
    try:
        for ends, (size, count) in zip(steps, plan):
            for end in ends:
                end.warm()
            barrier.wait(OP_TIMEOUT_SECONDS)
            for _ in range(count):
                for end in ends:
                    t = time.perf_counter_ns()
                    if not end.wait_recv():
                        raise TimeoutError("no message came: the sender stopped")
                    u = time.perf_counter_ns()
                    got = end.recv()
                    log.add("wait", "wait", t, u)
                    log.add(f"recv {size} B", "send", u, time.perf_counter_ns())
                    if got != size:
                        raise ValueError(f"received {got} bytes, expected {size}")
            ends_ns.append(time.perf_counter_ns())
            received.append(count * len(ends))
    finally:
        for end in {id(e): e for ends in steps for e in ends}.values():
            end.close()
    return TracedResult((ends_ns, received), log.recording())


# -- measurements ------------------------------------------------------------------------------
@dataclass
class TransferRun:
    """One channel at one or more sizes: bytes per second for each, and both ends' timeline."""

    channel: str
    plan: list[tuple[int, int]]  # (message size, messages per sender)
    senders: int
    rates: dict[int, float]  # message size -> bytes per second, all senders together (the best
    trace: Trace             # step of that size, if the plan has several)
    seconds: float
    start_method: str
    step_rates: list[float] = field(default_factory=list)  # each step of `plan`, in its order

    def summary(self) -> str:
        from .common import format_bytes, format_rate

        parts = [f"{format_bytes(s)}: {format_rate(r)}" for s, r in self.rates.items()]
        return f"{self.channel} ({self.senders} sender(s)): " + ", ".join(parts)


def _check_list(name: str, value: object) -> None:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list, got {value!r}")


def _check_plan(plan: Sequence[tuple[int, int]], senders: int) -> list[tuple[int, int]]:
    _check_list("plan", plan)
    if len(plan) > _MAX_STEPS:
        raise ValueError(f"plan must have at most {_MAX_STEPS} steps, got {len(plan)}")
    checked = []
    for size, count in plan:
        check_int("message_size", size, 1, MAX_MESSAGE_BYTES)
        check_int("message_count", count, 1, MAX_MESSAGES)
        if size * count * senders > MAX_TOTAL_BYTES:
            raise ValueError(f"message_size × message_count × senders must be at most "
                             f"{MAX_TOTAL_BYTES >> 30} GiB, got {size * count * senders} bytes")
        checked.append((size, count))
    if not checked:
        raise ValueError("plan must hold at least one (message_size, message_count) pair")
    return checked


def transfer(channel: str = "Pipe", plan: Sequence[tuple[int, int]] = ((1 << 20, 16),), *,
             senders: int = 1,
             start_method: str | None = None,
             timeout: float = DEFAULT_TIMEOUT_SECONDS) -> TransferRun:
    """Send, for each ``(size, count)`` of `plan`, `count` messages of `size` bytes from each of
    `senders` processes to one receiver process over `channel`; measure and record both ends.

    A size may come more than once (``[(1 << 20, 256)] * 3``): each step is timed on its own and
    ``rates[size]`` is the best of them, as `timeit` keeps the best repetition — the step the rest
    of the machine disturbed least."""
    check_choice("channel", channel, CHANNELS)
    check_int("senders", senders, 1, _MAX_SENDERS)
    plan = _check_plan(plan, senders)
    ring_bytes = senders * sum(size * ring_slots(size) for size, _ in plan)
    if channel == "shared memory" and ring_bytes > _MAX_RING_BYTES:
        raise ValueError(f"plan: the rings of all its steps (message_size × slots × senders, "
                         f"summed) must be at most {_MAX_RING_BYTES >> 30} GiB of shared memory, "
                         f"got {ring_bytes >> 20} MiB")
    start_method = check_start_method(start_method)
    timeout = check_timeout("timeout", timeout)
    ctx = mp_context(start_method)
    manager = ctx.Manager() if channel == "Manager" else None
    channels = barrier = None
    try:
        channels = open_channels(channel, ctx, senders=senders, sizes=[s for s, _ in plan],
                                 manager=manager)
        barrier = ctx.Barrier(senders + 1)
        with ProcessGroup(start_method, start_spans=False) as group:  # the course's runner
            for i in range(senders):
                name = f"sender {i + 1}"
                group.start(_send_loop, (name, [step[i] for step in channels.senders], plan,
                                         barrier), lane=name)
            group.start(_receive_loop, ("receiver", channels.receivers, plan, barrier),
                        lane="receiver")
            ran = group.wait(timeout)
    finally:
        if barrier is not None:
            release_semaphores(barrier)
        if channels is not None:
            channels.close()
        if manager is not None:
            manager.shutdown()
    ran.raise_failures()
    rates, step_rates = {}, []
    ends_ns, received = ran.values[senders]  # the receiver started last
    for k, (size, count) in enumerate(plan):
        if received[k] != count * senders:  # every message sent was received, none left over
            raise RuntimeError(f"the receiver got {received[k]} messages of {size} B, "
                               f"{count * senders} were sent")
        t0 = min(ran.values[i][k] for i in range(senders))
        rate = size * count * senders / max(ends_ns[k] - t0, 1) * 1e9
        rates[size] = max(rate, rates.get(size, 0.0))
        step_rates.append(rate)
    return TransferRun(channel, plan, senders, rates, ran.trace, ran.seconds, start_method,
                       step_rates)


def measure_memcpy(size: int, count: int, *, slots: int = 1) -> float:
    """Bytes per second of `count` ``numpy.copyto`` calls of `size` bytes, in this process.

    The destinations are `slots` buffers of `size` bytes, taken in turn: with the ring's number of
    slots (`ring_slots(size)`) this is the shared-memory sender's own copy — the same source, the
    same destination memory, so the same caches — without a second process. With ``slots=1`` the
    same buffer is overwritten each time and may stay in the core's cache, which no copy to
    another process can do."""
    check_int("message_size", size, 1, MAX_MESSAGE_BYTES)
    check_int("message_count", count, 1, MAX_MESSAGES)
    check_int("slots", slots, 1, _MAX_SLOTS)
    src = np.random.default_rng(0).integers(0, 256, size, np.uint8)
    dst = np.empty((slots, size), np.uint8)
    dst.fill(0)  # touch every destination page once, as the ring's slots are
    t0 = time.perf_counter_ns()
    for k in range(count):
        np.copyto(dst[k % slots], src)
    return size * count / max(time.perf_counter_ns() - t0, 1) * 1e9


@dataclass
class Sweep:
    """Throughput of each channel (and memcpy) by message size, all measured in one run."""

    sizes: list[int]
    rates: dict[str, dict[int, float]]  # channel (or "memcpy") -> size -> bytes per second
    runs: dict[str, TransferRun]
    start_method: str

    def ratio(self, channel: str, size: int) -> float:
        """The channel's throughput as a fraction of memcpy's at `size`."""
        return self.rates[channel][size] / self.rates["memcpy"][size]


def messages_for(size: int, volume: int, *, least: int = 3, most: int = 2000) -> int:
    """How many messages of `size` make about `volume` bytes (at least `least`, at most `most`)."""
    return max(least, min(most, volume // size))


def sweep(channels: Sequence[str] = ("Queue", "Pipe", "shared memory"),
          sizes: Sequence[int] = SWEEP_SIZES, *, volume: int = 64 << 20,
          start_method: str | None = None) -> Sweep:
    """Every channel at every size, `volume` bytes or so each, plus memcpy of the same sizes (into
    as many buffers as the ring has slots: the shared-memory sender's copy, in one process)."""
    _check_list("channels", channels)
    for channel in channels:
        check_choice("channel", channel, CHANNELS)
    _check_list("sizes", sizes)
    check_int("volume", volume, 1 << 10, 1 << 30)
    plan = [(check_int("message_size", s, 1, MAX_MESSAGE_BYTES), messages_for(s, volume))
            for s in sizes]
    start_method = check_start_method(start_method)
    runs = {c: transfer(c, plan, start_method=start_method) for c in channels}
    rates = {c: run.rates for c, run in runs.items()}
    rates["memcpy"] = {size: measure_memcpy(size, count, slots=ring_slots(size))
                       for size, count in plan}
    return Sweep([s for s, _ in plan], rates, runs, start_method)
