"""N producers and M consumers over one Queue, with sentinels; every message counted and checked.

Data flow::

    producer 1 ─┐  put((id, check))        ┌─> consumer 1  get() until it gets None
    producer 2 ─┼──────> Queue(maxsize) ───┼─> consumer 2  counts ids, sums checks, verifies each
       ...      │  then flush its feeder   └─> ...
                │  (close + join_thread) and release `done`
    closer ─────┘  acquire `done` N times (all producers' data is in the pipe), then put M × None

Why a closer: put() returns before the item is in the pipe (the feeder thread writes it later).
A sentinel put as soon as the producers *returned* could overtake their last items; once each
producer has joined its feeder thread, everything it sent is in the pipe, ahead of any sentinel.
Each consumer stops at the first None it gets, so M sentinels stop M consumers.

The parent then checks: every id 0..n-1 received exactly once (none lost, none duplicated), and
the sum of the check values equals the sum that was sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.course import check_int, check_start_method, check_timeout, mp_context
from helpers.runners import ProcessGroup, Run, close_queue, release_semaphores
from helpers.timeline import Trace, TracedResult

from .common import DEFAULT_TIMEOUT_SECONDS, SpanLog

# `produce`, `consume` and `close_after` are the children's targets: module level so every start
# method finds them, and not in __all__, as nothing in this process calls them.
__all__ = ["PipelineRun", "run_pipeline"]

_OP_SECONDS = 30.0  # the longest one put/get may wait: a dead peer is noticed, not awaited
# A put or get that took longer than this was blocked (a full or empty queue, the GIL held by the
# feeder thread, no free core): drawn as a wait.
# An uncontended one takes a few µs.
_BLOCKED_NS = 30_000
# Bounds on what a caller may ask: ten times the chapter's 100,000 messages (~30 s), a few
# processes per core of a laptop, and 10 ms of work per message (a million of those is hours).
MAX_MESSAGES = 1_000_000
_MAX_PROCESSES = 8
_MAX_WORK_US = 10_000
_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: a check value that differs for every id
_MASK = (1 << 32) - 1  # check values are 32-bit: the sums stay small ints


def _check_value(message_id: int) -> int:
    """The check value sent with `message_id`: a consumer recomputes it to verify the message."""
    return (message_id * _MULTIPLIER) & _MASK


def _busy(ns: int) -> None:
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


def produce(name: str, queue: Any, done: Any, first: int, count: int,
            work_us: int) -> TracedResult:
    """Put messages ``first .. first+count-1``; flush the feeder; release `done`."""
    log = SpanLog(name)
    total = 0
    for message_id in range(first, first + count):
        t = time.perf_counter_ns()
        _busy(work_us * 1000)
        value = _check_value(message_id)
        u = time.perf_counter_ns()
        queue.put((message_id, value), timeout=_OP_SECONDS)
        v = time.perf_counter_ns()
        total += value
        log.add("make a message", "run", t, u)
        log.add("put blocked", "wait", u, v) if v - u > _BLOCKED_NS else \
            log.add("make a message", "run", u, v)
    t = time.perf_counter_ns()
    queue.close()
    queue.join_thread()  # every item is now in the pipe, ahead of any sentinel
    flushed = time.perf_counter_ns()
    log.add("flush the feeder thread", "send", t, flushed)
    done.release()
    return TracedResult({"sent": count, "sum": total, "flushed_ns": flushed}, log.recording())


def close_after(name: str, queue: Any, done: Any, producers: int, consumers: int) -> TracedResult:
    """Wait for every producer's `done`, then put one sentinel (None) per consumer."""
    log = SpanLog(name)
    t = time.perf_counter_ns()
    for _ in range(producers):
        if not done.acquire(timeout=DEFAULT_TIMEOUT_SECONDS):
            raise TimeoutError("a producer never finished")
    u = time.perf_counter_ns()
    for _ in range(consumers):
        queue.put(None)
    log.add("wait for the producers", "wait", t, u)
    log.add(f"put {consumers} sentinels", "send", u, time.perf_counter_ns())
    return TracedResult({"sentinels_ns": u}, log.recording())


def consume(name: str, queue: Any, work_us: int) -> TracedResult:
    """Get messages until a sentinel; verify each check value; return the ids and the sum."""
    log = SpanLog(name)
    ids: list[int] = []
    total, bad = 0, 0
    while True:
        t = time.perf_counter_ns()
        message = queue.get(timeout=_OP_SECONDS)
        u = time.perf_counter_ns()
        if message is None:
            log.add("get blocked", "wait", t, u)
            break
        message_id, value = message
        bad += value != _check_value(message_id)
        ids.append(message_id)
        total += value
        _busy(work_us * 1000)
        log.add("get blocked", "wait", t, u) if u - t > _BLOCKED_NS else \
            log.add("use a message", "run", t, u)
        log.add("use a message", "run", u, time.perf_counter_ns())
    return TracedResult({"ids": np.array(ids, dtype=np.int64), "sum": total, "bad": bad},
                        log.recording())


def _count(n: int, noun: str) -> str:
    """`n` and `noun`, plural unless there is one: "1 consumer", "2 producers"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass
class PipelineRun:
    """What the consumers got, checked against what the producers sent."""

    producers: int
    consumers: int
    messages: int
    received: int
    lost: int
    duplicated: int
    corrupted: int
    checksum_ok: bool
    per_consumer: list[int]
    seconds: float
    trace: Trace
    start_method: str
    flushed_ns: list[int]  # when each producer's data was all in the pipe
    sentinels_ns: int  # when the closer began putting the sentinels

    @property
    def ok(self) -> bool:
        return self.received == self.messages and not (self.lost or self.duplicated or
                                                       self.corrupted) and self.checksum_ok

    def summary(self) -> str:
        return (f"{_count(self.producers, 'producer')} → {_count(self.consumers, 'consumer')}, "
                f"{self.messages:,} "
                f"messages ({self.start_method}): received {self.received:,}, lost {self.lost}, "
                f"duplicated {self.duplicated}, corrupted {self.corrupted}, checksum "
                f"{'matches' if self.checksum_ok else 'DIFFERS'}; per consumer "
                f"{self.per_consumer}; {self.seconds:.2f} s, "
                f"{self.messages / self.seconds:,.0f} messages/s")


def run_pipeline(producers: int = 2, consumers: int = 2, messages: int = 100_000, *,
                 maxsize: int = 1000, producer_work_us: int = 0, consumer_work_us: int = 0,
                 start_method: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> PipelineRun:
    """N producers, M consumers and one closer over one Queue; every message checked after."""
    _check_pipeline(producers, consumers, messages, maxsize, producer_work_us, consumer_work_us)
    start_method = check_start_method(start_method)
    timeout = check_timeout("timeout", timeout)
    ctx = mp_context(start_method)
    queue = ctx.Queue(maxsize)  # put() blocks while maxsize items wait
    done = ctx.Semaphore(0)  # each producer releases it once, when its data is in the pipe
    shares = [messages // producers + (i < messages % producers) for i in range(producers)]
    firsts = [sum(shares[:i]) for i in range(producers)]
    try:
        # The course's runner: one child each, each report collected (a child that dies without
        # one is noticed), all joined within `timeout`; leaving the block stops any child left.
        with ProcessGroup(start_method, start_spans=False) as group:
            for i in range(producers):
                name = f"producer {i + 1}"
                group.start(produce, (name, queue, done, firsts[i], shares[i], producer_work_us),
                            lane=name)
            for j in range(consumers):
                name = f"consumer {j + 1}"
                group.start(consume, (name, queue, consumer_work_us), lane=name)
            group.start(close_after, ("closer", queue, done, producers, consumers), lane="closer")
            ran = group.wait(timeout)
    finally:
        close_queue(queue)
        release_semaphores(queue, done)
    ran.raise_failures()
    return _checked(ran, producers, consumers, messages)


def _check_pipeline(producers: int, consumers: int, messages: int, maxsize: int,
                    producer_work_us: int, consumer_work_us: int) -> None:
    check_int("producers", producers, 1, _MAX_PROCESSES)
    check_int("consumers", consumers, 1, _MAX_PROCESSES)
    check_int("messages", messages, producers, MAX_MESSAGES)
    check_int("maxsize", maxsize, 0, MAX_MESSAGES)
    check_int("producer_work_us", producer_work_us, 0, _MAX_WORK_US)
    check_int("consumer_work_us", consumer_work_us, 0, _MAX_WORK_US)


def _checked(ran: Run, producers: int, consumers: int, messages: int) -> PipelineRun:
    """Every id 0..messages-1 received once, every check value right, the sums equal."""
    sent, got, closer = (ran.values[:producers], ran.values[producers:producers + consumers],
                         ran.values[-1])  # in the order the children were started
    ids = np.concatenate([g["ids"] for g in got])
    unique = np.unique(ids)
    in_range = unique[(unique >= 0) & (unique < messages)]
    sent_sum = sum(s["sum"] for s in sent)
    return PipelineRun(producers, consumers, messages, len(ids), messages - len(in_range),
                       len(ids) - len(unique), sum(g["bad"] for g in got),
                       sum(g["sum"] for g in got) == sent_sum, [len(g["ids"]) for g in got],
                       ran.seconds, ran.trace, ran.start_method,
                       [s["flushed_ns"] for s in sent], closer["sentinels_ns"])
