"""Chapter 05c (05c_gevent_api): gevent coordination demos, measured.

Queues, events, pools, locks, local data and a thread pool.

The notebook writes the short programs out in its cells; these are the measured versions that
record a timeline (`producer_consumer`, behind 05c's panel) or count something the chapter's tests
assert. Each one joins everything it spawned
before it returns, with a timeout (`greenlet_demos.join_all`)::

    producer_consumer ──> Queue(maxsize) ──> consumers           value: who handled which item
    signal_waiters    ──> Event.set() wakes every waiter          value: how long each waited
    pool_run          ──> Pool(size) / Group                      value: most at once
    over_release, local_vs_shared, blocking_in_threadpool         small facts, as data
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gevent
import gevent.local
import gevent.lock
import gevent.queue
from gevent.event import AsyncResult, Event
from gevent.pool import Group, Pool
from gevent.threadpool import ThreadPool

from helpers.course import check_choice, check_float, check_int
from helpers.runners import Run

from .greenlet_demos import JOIN_TIMEOUT_SECONDS, fetch, join_all, spawn_named, traced

__all__ = [
    "blocking_in_threadpool",
    "local_vs_shared",
    "over_release",
    "pool_run",
    "producer_consumer",
    "signal_waiters",
]

# The threadpool demo's ticker period: as in chapter 05's CPU-hog demo.
_TICK_SECONDS = 0.01
# A thread pool of this many native threads: enough for the demo's few blocking calls.
_MAX_THREADS = 16


def producer_consumer(items: int = 12, consumers: int = 3, maxsize: int = 4,
                      work_seconds: float = 0.05) -> Run:
    """A producer puts `items` on a bounded ``gevent.queue.Queue``; consumers take and work.

    The value maps each consumer to the items it handled. ``put`` blocks (switches away) while the
    queue holds `maxsize` items, so the producer never runs far ahead of the consumers.
    """
    check_int("items", items, 0, 10_000)
    check_int("consumers", consumers, 1, 100)
    check_int("maxsize", maxsize, 1, 10_000)
    check_float("work_seconds", work_seconds, 0.0, 5.0)
    queue: gevent.queue.Queue = gevent.queue.Queue(maxsize)
    handled: dict[str, list[int]] = {f"consumer {i}": [] for i in range(consumers)}

    def produce() -> None:
        for item in range(items):
            queue.put(item, timeout=JOIN_TIMEOUT_SECONDS)
        for _ in range(consumers):
            queue.put(None, timeout=JOIN_TIMEOUT_SECONDS)  # one "no more work" marker each

    def consume(name: str) -> None:
        while (item := queue.get(timeout=JOIN_TIMEOUT_SECONDS)) is not None:
            gevent.sleep(work_seconds)
            handled[name].append(item)

    def body() -> dict[str, list[int]]:
        glets = [spawn_named("producer", produce)]
        glets += [spawn_named(name, consume, name) for name in handled]
        join_all(glets)
        return handled

    return traced(body)


def signal_waiters(waiters: int = 3, after: float = 0.1) -> dict[str, Any]:
    """Waiters block on an ``Event`` until one greenlet sets it; an ``AsyncResult`` carries a value.

    Returns how long each waiter waited and the value every reader of the AsyncResult got.
    """
    check_int("waiters", waiters, 1, 1000)
    check_float("after", after, 0.0, 10.0)
    ready, answer = Event(), AsyncResult()
    waited: dict[str, float] = {}
    started = time.perf_counter()

    def wait(name: str) -> str:
        if not ready.wait(timeout=JOIN_TIMEOUT_SECONDS):
            raise TimeoutError("nobody set the event")
        waited[name] = round(time.perf_counter() - started, 3)
        return answer.get(timeout=JOIN_TIMEOUT_SECONDS)

    def setter() -> None:
        gevent.sleep(after)
        answer.set(42)
        ready.set()

    glets = [gevent.spawn(wait, f"waiter {i}") for i in range(waiters)] + [gevent.spawn(setter)]
    join_all(glets)
    return {"waited s": waited, "values": [g.value for g in glets[:-1]]}


def pool_run(tasks: int = 12, size: int | None = 4, seconds: float = 0.1) -> Run:
    """`tasks` fetches through a ``Pool(size)`` (at most `size` at once) or a ``Group`` (None).

    The value reports the most greenlets that were inside a fetch at the same time.
    """
    check_int("tasks", tasks, 1, 10_000)
    check_float("seconds", seconds, 0.0, 10.0)
    group = Group() if size is None else Pool(check_int("size", size, 1, 10_000))
    inside = {"now": 0, "most": 0}

    def task(index: int) -> str:
        inside["now"] += 1
        inside["most"] = max(inside["most"], inside["now"])
        try:
            return fetch(f"page {index}", seconds)
        finally:
            inside["now"] -= 1

    def body() -> dict[str, Any]:
        for index in range(tasks):
            group.spawn(task, index).name = f"task {index}"  # blocks while the pool is full
        if not group.join(timeout=JOIN_TIMEOUT_SECONDS, raise_error=True):
            group.kill(timeout=1.0)
            raise TimeoutError("the pool's greenlets did not finish in time: killed")
        return {"tasks": tasks, "most at once": inside["most"]}

    return traced(body)


def over_release() -> str:
    """Acquire a ``BoundedSemaphore(2)`` once, release twice: the bug a plain Semaphore hides."""
    semaphore = gevent.lock.BoundedSemaphore(2)
    semaphore.acquire(timeout=1.0)
    semaphore.release()
    try:
        semaphore.release()
    except ValueError as exc:
        return f"ValueError: {exc}"
    return "no error"  # pragma: no cover - gevent always raises here


def local_vs_shared(users: Sequence[str] = ("ada", "grace", "linus")) -> dict[str, dict]:
    """Each greenlet stores "its" user, yields, reads it back: from a shared object and a local."""
    if isinstance(users, (str, bytes)) or not isinstance(users, Sequence) or \
            not 1 <= len(users) <= 1000 or not all(isinstance(u, str) for u in users):
        raise ValueError(f"users must be a list of 1 to 1000 names (strings), got {users!r}")
    shared = type("Shared", (), {})()
    local = gevent.local.local()
    seen: dict[str, dict] = {"shared object": {}, "gevent.local.local()": {}}

    def handle(user: str) -> None:
        shared.user = local.user = user
        gevent.sleep(0)  # other requests run here
        seen["shared object"][user] = shared.user
        seen["gevent.local.local()"][user] = local.user

    join_all([gevent.spawn(handle, u) for u in users])
    return seen


def blocking_in_threadpool(calls: int = 3, seconds: float = 0.2, *, how: str = "threadpool"
                           ) -> Run:
    """`calls` blocking ``time.sleep(seconds)`` calls next to a 10 ms ticker, made directly in
    greenlets (``how="direct"``: each holds the thread and the ticker stops) or through a
    ``gevent.threadpool.ThreadPool`` (``how="threadpool"``: native threads block, the greenlet
    waits cooperatively for the result and the ticker keeps its beat).

    The value gives the total time and the ticker's worst lateness in ms.
    """
    check_int("calls", calls, 1, _MAX_THREADS)
    check_float("seconds", seconds, 0.0, 2.0)
    check_choice("how", how, ("direct", "threadpool"))
    pool = ThreadPool(calls)
    lateness: list[float] = []
    done = Event()

    def ticker() -> None:
        start, tick = time.perf_counter(), 1
        while not done.is_set():
            due = start + tick * _TICK_SECONDS
            gevent.sleep(max(0.0, due - time.perf_counter()))
            lateness.append(time.perf_counter() - due)
            tick += 1

    def blocking_call(index: int) -> int:
        if how == "direct":
            time.sleep(seconds)  # un-patched: the whole thread, every greenlet, waits
        else:
            pool.spawn(time.sleep, seconds).get(timeout=JOIN_TIMEOUT_SECONDS)
        return index

    def body() -> dict[str, float]:
        clock = spawn_named("ticker", ticker)
        gevent.sleep(3 * _TICK_SECONDS)
        started = time.perf_counter()
        try:
            join_all([spawn_named(f"call {i}", blocking_call, i) for i in range(calls)])
        finally:
            elapsed = time.perf_counter() - started
            done.set()
            join_all([clock])
        return {"seconds": elapsed, "worst lateness ms": 1000 * max(lateness, default=0.0)}

    try:
        return traced(body)
    finally:
        pool.kill()
