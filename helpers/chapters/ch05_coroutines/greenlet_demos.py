"""Chapter 05's in-kernel gevent demos: each one spawns, joins in the same call, and measures.

Un-patched gevent works inside a Jupyter kernel only while a cell blocks in gevent: a greenlet that
is spawned and not joined does not run until the next ``gevent.sleep``. So every demo here joins
everything it spawned before it returns, and none of them patches anything (the patched demos run
in a child process: `helpers.runners.run_patched`, `patching_demos`)::

    >>> run = chores(concurrent=True, scale=0.1)
    >>> sorted(run.value)
    ['cook rice', 'download film', 'wash up']
    >>> run.seconds < 0.1 * sum(CHORES.values())       # the longest chore, not the sum
    True

Each demo returns a `helpers.runners.Run`: its value, its wall time, and a trace of every greenlet's
run spans (from `helpers.timeline.GreenletRecorder`) to draw with `helpers.coroutine_views`.
The small task functions (`chore`, `fetch`, `fail`, `Chore`) are top-level so a notebook cell can
spawn them directly: ``gevent.spawn(fetch, "page", 0.1)``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import gevent.local
import gevent.lock
import gevent.queue
from gevent.event import AsyncResult, Event
from gevent.pool import Group, Pool

from helpers.course import check_choice, check_float, check_int
from helpers.runners import Run
from helpers.timeline import GreenletRecorder
from helpers.workloads import MAX_ITERATIONS, cpu_task, iterations_for

__all__ = [
    "CHORES",
    "Chore",
    "YIELDS",
    "chore",
    "chores",
    "cpu_blocks",
    "fail",
    "fetch",
    "interleaving",
    "local_vs_shared",
    "lost_updates",
    "over_release",
    "pool_run",
    "producer_consumer",
    "quiet_failures",
    "signal_waiters",
    "sleepers",
]

# The seed article's three chores, in seconds of waiting: long enough to see on a timeline, short
# enough that the serial run (their sum) stays well under the 10 s a demo cell may take.
CHORES = {"download film": 1.5, "cook rice": 1.0, "wash up": 0.5}
# 10,000 greenlets is the article's scale; above 100,000 a reader's kernel spends seconds spawning.
_MAX_GREENLETS = 100_000
# The CPU-hog demo's ticker wants to run every 10 ms: a UI refresh, a heartbeat, a socket read.
_TICK_SECONDS = 0.01
YIELDS = ("sleep(0)", "idle")


def _traced(body) -> Run:
    """Run `body` under a greenlet recorder: its value, wall time, and every greenlet's spans."""
    recorder = GreenletRecorder()
    started = time.perf_counter()
    with recorder:
        value = body()
    seconds = time.perf_counter() - started
    return Run("gevent", getattr(body, "__qualname__", "gevent demo").split(".")[0], [value], {},
               seconds, recorder.recording(), details={"switches": recorder.switches})


def _spawn(name: str, function, *args: Any) -> gevent.Greenlet:
    glet = gevent.Greenlet(function, *args)
    glet.name = name  # the timeline lane
    glet.start()
    return glet


# -- tasks a cell can spawn ---------------------------------------------------------------------
def chore(name: str, seconds: float) -> str:
    """Wait `seconds` the gevent way (the hub runs others meanwhile); return `name`."""
    gevent.sleep(check_float("seconds", seconds, 0.0, 60.0))
    return name


def fetch(name: str, seconds: float) -> str:
    """Pretend to download `name`, taking `seconds`."""
    chore(name, seconds)
    return f"{name}: {int(seconds * 1000)} ms of data"


@contextmanager
def quiet_failures(*errors: type[BaseException]) -> Iterator[None]:
    """Inside the block, the hub does not print the traceback of a greenlet failing with `errors`.

    gevent's hub prints every failed greenlet's traceback to stderr — right for a program, noise
    in a cell that inspects ``greenlet.exception`` on purpose.
    """
    hub = gevent.get_hub()
    before = hub.NOT_ERROR
    hub.NOT_ERROR = tuple(before) + (errors or (Exception,))
    try:
        yield
    finally:
        hub.NOT_ERROR = before


def fail(message: str, after: float = 0.0) -> None:
    """Wait `after` seconds, then raise ``ValueError(message)``: a greenlet that dies."""
    gevent.sleep(check_float("after", after, 0.0, 60.0))
    raise ValueError(message)


class Chore(gevent.Greenlet):
    """A Greenlet subclass: the work is the `_run` method, the state lives on the object."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__()
        self.what, self.seconds, self.name = what, seconds, what

    def _run(self) -> str:
        return chore(self.what, self.seconds)

    def __str__(self) -> str:
        return f"<Chore {self.what!r} ({self.seconds} s)>"


# -- "what you will see" ------------------------------------------------------------------------
def chores(concurrent: bool, scale: float = 1.0) -> Run:
    """The three chores one after another, or as three greenlets at once (`scale` × `CHORES`)."""
    check_float("scale", scale, 0.0, 4.0)

    def body() -> list[str]:
        if concurrent:
            glets = [_spawn(name, chore, name, t * scale) for name, t in CHORES.items()]
            gevent.joinall(glets, raise_error=True)
            return [g.value for g in glets]
        done = []
        for name, t in CHORES.items():
            glet = _spawn(name, chore, name, t * scale)
            glet.join()
            done.append(glet.value)
        return done

    return _traced(body)


def sleepers(count: int = 10_000, seconds: float = 1.0) -> Run:
    """`count` greenlets each sleeping `seconds`, all at once; the value is how many finished."""
    check_int("count", count, 1, _MAX_GREENLETS)
    check_float("seconds", seconds, 0.0, 10.0)

    def body() -> int:
        glets = [gevent.spawn(gevent.sleep, seconds) for _ in range(count)]
        gevent.joinall(glets)
        return sum(g.successful() for g in glets)

    return _traced(body)


# -- switching is explicit ----------------------------------------------------------------------
def interleaving(workers: int = 3, steps: int = 3, jitter: float = 0.0) -> list[str]:
    """Who ran when: ``["A0", "B0", "C0", "A1", …]``.

    Each worker logs a step, then yields with ``gevent.sleep(pause)``. With ``jitter=0`` every
    pause is 0 and the order is the same on every run: the hub is a fair round-robin. With
    ``jitter > 0`` each pause is random (like real network latency) and the order changes.
    """
    check_int("workers", workers, 1, 26)
    check_int("steps", steps, 1, 100)
    check_float("jitter", jitter, 0.0, 1.0)
    rng = random.Random(os.urandom(8))
    log: list[str] = []

    def work(letter: str) -> None:
        for step in range(steps):
            log.append(f"{letter}{step}")
            gevent.sleep(rng.uniform(0, jitter) if jitter else 0)

    gevent.joinall([gevent.spawn(work, chr(ord("A") + i)) for i in range(workers)])
    return log


def lost_updates(workers: int = 10, increments: int = 100, *, yield_inside: bool = False,
                 lock: bool = False) -> dict[str, int]:
    """Greenlets add 1 to a shared counter; with a switch between read and write, updates are lost.

    ``yield_inside=True`` puts a ``gevent.sleep(0)`` between reading and writing the counter (as a
    network call in the middle would); ``lock=True`` guards the read-modify-write with
    ``gevent.lock.Semaphore``.
    """
    check_int("workers", workers, 1, 1000)
    check_int("increments", increments, 1, 10_000)
    state = {"counter": 0}
    guard = gevent.lock.Semaphore()

    def add() -> None:
        for _ in range(increments):
            if lock:
                guard.acquire()
            value = state["counter"]
            if yield_inside:
                gevent.sleep(0)
            state["counter"] = value + 1
            if lock:
                guard.release()

    gevent.joinall([gevent.spawn(add) for _ in range(workers)])
    expected = workers * increments
    return {"expected": expected, "counted": state["counter"], "lost": expected - state["counter"]}


def _sleep0() -> None:
    gevent.sleep(0)


# -- CPU work blocks the hub --------------------------------------------------------------------
def cpu_blocks(cpu_seconds: float = 0.3, yield_every: int | None = None,
               yield_with: str = "sleep(0)") -> Run:
    """A ticker that wants to run every 10 ms, next to a greenlet computing for `cpu_seconds`.

    ``yield_every`` is how many `cpu_task` iterations the computation does between two yields
    (None: never). ``yield_with`` is ``"sleep(0)"`` (``gevent.sleep(0)``: other *ready* greenlets
    run, but the hub looks at timers and sockets only every 50 callbacks) or ``"idle"``
    (``gevent.idle()``: wait until the hub has polled timers and sockets). The value reports the
    ticker's worst lateness and its 90th percentile in ms (the percentile ignores the odd tick
    that the operating system delayed by giving the core to another program).
    """
    check_float("cpu_seconds", cpu_seconds, 0.0, 5.0)
    check_choice("yield_with", yield_with, YIELDS)
    pause = gevent.idle if yield_with == "idle" else _sleep0
    total = iterations_for(cpu_seconds)
    chunk = total if yield_every is None else check_int("yield_every", yield_every, 1,
                                                        MAX_ITERATIONS)
    lateness: list[float] = []
    finished = Event()

    def ticker() -> None:
        start = time.perf_counter()
        tick = 1
        while not finished.is_set():
            due = start + tick * _TICK_SECONDS
            gevent.sleep(max(0.0, due - time.perf_counter()))
            lateness.append(time.perf_counter() - due)
            tick += 1

    def compute() -> None:
        done = 0
        gevent.sleep(2 * _TICK_SECONDS)  # let the ticker show its regular beat first
        while done < total:
            step = min(chunk, total - done)
            cpu_task(step)
            done += step
            if yield_every is not None:
                pause()
        gevent.sleep(2 * _TICK_SECONDS)
        finished.set()

    def body() -> dict[str, float]:
        glets = [_spawn("ticker", ticker), _spawn("compute", compute)]
        gevent.joinall(glets, raise_error=True)
        ordered = sorted(lateness) or [0.0]
        return {"worst lateness ms": 1000 * ordered[-1],
                "p90 lateness ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
                "ticks": len(lateness), "chunk ms": 1000 * cpu_seconds * chunk / total}

    return _traced(body)


# -- coordination -------------------------------------------------------------------------------
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
            queue.put(item)
        for _ in range(consumers):
            queue.put(None)  # one "no more work" marker per consumer

    def consume(name: str) -> None:
        while (item := queue.get()) is not None:
            gevent.sleep(work_seconds)
            handled[name].append(item)

    def body() -> dict[str, list[int]]:
        glets = [_spawn("producer", produce)]
        glets += [_spawn(name, consume, name) for name in handled]
        gevent.joinall(glets, raise_error=True)
        return handled

    return _traced(body)


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
        ready.wait()
        waited[name] = round(time.perf_counter() - started, 3)
        return answer.get()

    def setter() -> None:
        gevent.sleep(after)
        answer.set(42)
        ready.set()

    glets = [gevent.spawn(wait, f"waiter {i}") for i in range(waiters)] + [gevent.spawn(setter)]
    gevent.joinall(glets, raise_error=True)
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
        group.join(raise_error=True)
        return {"tasks": tasks, "most at once": inside["most"]}

    return _traced(body)


def over_release() -> str:
    """Acquire a ``BoundedSemaphore(2)`` once, release twice: the bug a plain Semaphore hides."""
    semaphore = gevent.lock.BoundedSemaphore(2)
    semaphore.acquire()
    semaphore.release()
    try:
        semaphore.release()
    except ValueError as exc:
        return f"ValueError: {exc}"
    return "no error"  # pragma: no cover - gevent always raises here


def local_vs_shared(users: tuple[str, ...] = ("ada", "grace", "linus")) -> dict[str, dict]:
    """Each greenlet stores "its" user, yields, reads it back: from a shared object and a local."""
    shared = type("Shared", (), {})()
    local = gevent.local.local()
    seen: dict[str, dict] = {"shared object": {}, "gevent.local.local()": {}}

    def handle(user: str) -> None:
        shared.user = local.user = user
        gevent.sleep(0)  # other requests run here
        seen["shared object"][user] = shared.user
        seen["gevent.local.local()"][user] = local.user

    gevent.joinall([gevent.spawn(handle, u) for u in users], raise_error=True)
    return seen
