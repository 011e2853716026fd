"""Chapter 05's in-kernel gevent demos: each one spawns, joins in the same call, and measures.

Un-patched gevent works inside a Jupyter kernel only while a cell blocks in gevent: a greenlet that
is spawned and not joined does not run until the next ``gevent.sleep``. So every demo here joins
everything it spawned before it returns — always with a timeout, killing what is left — and none
of them patches anything (the patched demos run in a child: `helpers.runners.run_patched`)::

    demo(...) ──> body() in a GreenletRecorder ──> join_all(greenlets, timeout) ──> Run
                  (spawns, names each lane)         (kills stragglers, raises     value, seconds,
                                                     TimeoutError: never a hang)  trace, details

    >>> run = chores(concurrent=True, scale=0.1)
    >>> sorted(run.value)
    ['cook rice', 'download film', 'wash up']
    >>> run.seconds < 0.1 * sum(CHORES.values())       # the longest chore, not the sum
    True

Each demo returns a `helpers.runners.Run`: its value, its wall time, the thread's CPU time in
``details["cpu_seconds"]``, and a trace of every greenlet's run spans (from
`helpers.timeline.GreenletRecorder`) to draw with `views`. The small task functions (`chore`,
`fetch`, `fail`, `Chore`) are top-level so a notebook cell can spawn them directly:
``gevent.spawn(fetch, "page", 0.1)``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import gevent
import gevent.lock
from gevent.event import Event

from helpers.course import check_callable, check_choice, check_float, check_int, check_timeout
from helpers.runners import Run
from helpers.timeline import GreenletRecorder
from helpers.workloads import MAX_ITERATIONS, cpu_task, iterations_for

__all__ = [
    "CHORES",
    "Chore",
    "YIELDS",
    "PollingClock",
    "beside_ticker",
    "chore",
    "chores",
    "cpu_blocks",
    "fail",
    "fetch",
    "interleaving",
    "join_all",
    "lost_updates",
    "quiet_failures",
    "sleepers",
    "spawn_named",
    "switch_cost",
    "traced",
]

# The seed article's three chores, in seconds of waiting: long enough to see on a timeline, short
# enough that the serial run (their sum) stays well under the 10 s a demo cell may take.
CHORES = {"download film": 1.5, "cook rice": 1.0, "wash up": 0.5}
# 10,000 greenlets is the article's scale; above 100,000 a reader's kernel spends seconds spawning.
_MAX_GREENLETS = 100_000
# The CPU-hog demo's ticker wants to run every 10 ms: a UI refresh, a heartbeat, a socket read.
_TICK_SECONDS = 0.01
YIELDS = ("sleep(0)", "idle")
# Every join in this module waits at most this long: each demo lasts a few seconds at most, so a
# join still waiting after a minute is a bug, and the greenlets are killed instead of the kernel
# waiting forever.
JOIN_TIMEOUT_SECONDS = 60.0
# A task may wait at most this long: a minute is far beyond any demo.
_MAX_TASK_SECONDS = 60.0


def join_all(glets: Sequence[gevent.Greenlet], timeout: float = JOIN_TIMEOUT_SECONDS, *,
             raise_error: bool = True) -> list[gevent.Greenlet]:
    """``gevent.joinall`` with a deadline: greenlets not done by then are killed, and
    `TimeoutError` says how many. With `raise_error`, the first greenlet's exception is raised."""
    check_timeout("timeout", timeout)
    if isinstance(glets, (str, bytes)) or not isinstance(glets, Sequence) or \
            not all(isinstance(g, gevent.Greenlet) for g in glets):
        raise TypeError(f"glets must be a list of gevent Greenlets, got {glets!r:.80}")
    if not glets:
        raise ValueError("glets must be a non-empty list of greenlets, got []")
    done = gevent.joinall(glets, timeout=timeout, raise_error=raise_error)
    if len(done) < len(glets):
        left = [g for g in glets if not g.dead]
        gevent.killall(left, timeout=1.0)
        raise TimeoutError(f"{len(left)} of {len(glets)} greenlets still running after "
                           f"{timeout:g} s: killed")
    return list(glets)


class PollingClock:
    """While active, note when the hub's event loop blocks in the OS (polls) and when it returns.

    libev runs *prepare* watchers just before it polls and *check* watchers just after; one of
    each, at the lowest and highest priority, brackets the poll itself. The hub's time outside
    these brackets is dispatching: running callbacks, timers, waking greenlets.
    """

    def __init__(self) -> None:
        self.intervals: list[tuple[int, int]] = []
        self._entered: int | None = None

    def _before_poll(self) -> None:
        self._entered = time.perf_counter_ns()

    def _after_poll(self) -> None:
        if self._entered is not None:
            self.intervals.append((self._entered, time.perf_counter_ns()))
            self._entered = None

    def __enter__(self) -> PollingClock:
        loop = gevent.get_hub().loop
        # ref=False: the watchers never keep the loop alive by themselves.
        self._prepare, self._check = loop.prepare(ref=False), loop.check(ref=False)
        self._prepare.priority, self._check.priority = -2, 2  # libev's lowest and highest
        self._prepare.start(self._before_poll)
        self._check.start(self._after_poll)
        return self

    def __exit__(self, *exc: object) -> None:
        for watcher in (self._prepare, self._check):
            watcher.stop()
            watcher.close()


def traced(body: Callable[[], Any]) -> Run:
    """Run `body` under a greenlet recorder: value, wall and CPU time, every greenlet's spans,
    and when the hub polled (``details["polling"]``, from `PollingClock`)."""
    check_callable("body", body)
    recorder, polling = GreenletRecorder(), PollingClock()
    started, cpu_started = time.perf_counter(), time.thread_time()
    with recorder, polling:
        value = body()
    seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    return Run("gevent", getattr(body, "__qualname__", "gevent demo").split(".")[0], [value], {},
               seconds, recorder.recording(),
               details={"switches": recorder.switches, "cpu_seconds": cpu,
                        "polling": polling.intervals})


def spawn_named(name: str, function: Callable[..., Any], *args: Any) -> gevent.Greenlet:
    """Start ``function(*args)`` in a greenlet called `name` (its lane on the timeline)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r:.80}")
    check_callable("function", function)
    glet = gevent.Greenlet(function, *args)
    glet.name = name  # the timeline lane
    glet.start()
    return glet


# -- tasks a cell can spawn ---------------------------------------------------------------------
def chore(name: str, seconds: float) -> str:
    """Wait `seconds` the gevent way (the hub runs others meanwhile); return `name`."""
    gevent.sleep(check_float("seconds", seconds, 0.0, _MAX_TASK_SECONDS))
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
    for error in errors:
        if not (isinstance(error, type) and issubclass(error, BaseException)):
            raise TypeError(f"errors must be exception classes, got {error!r}")
    hub = gevent.get_hub()
    before = hub.NOT_ERROR
    hub.NOT_ERROR = tuple(before) + (errors or (Exception,))
    try:
        yield
    finally:
        hub.NOT_ERROR = before


def fail(message: str, after: float = 0.0) -> None:
    """Wait `after` seconds, then raise ``ValueError(message)``: a greenlet that dies."""
    if not isinstance(message, str):
        raise TypeError(f"message must be a string, got {message!r:.80}")
    gevent.sleep(check_float("after", after, 0.0, _MAX_TASK_SECONDS))
    raise ValueError(message)


class Chore(gevent.Greenlet):
    """A Greenlet subclass: the work is the `_run` method, the state lives on the object."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__()
        check_float("seconds", seconds, 0.0, _MAX_TASK_SECONDS)
        self.what, self.seconds, self.name = what, seconds, what

    def _run(self) -> str:
        return chore(self.what, self.seconds)

    def __str__(self) -> str:
        return f"<Chore {self.what!r} ({self.seconds} s)>"


# -- "what you will see" ------------------------------------------------------------------------
def chores(concurrent: bool, scale: float = 1.0) -> Run:
    """The three chores one after another, or as three greenlets at once (`scale` × `CHORES`)."""
    check_choice("concurrent", concurrent, (True, False))
    check_float("scale", scale, 0.0, 4.0)

    def body() -> list[str]:
        if concurrent:
            glets = [spawn_named(name, chore, name, t * scale) for name, t in CHORES.items()]
            join_all(glets)
            return [g.value for g in glets]
        done = []
        for name, t in CHORES.items():
            done.append(join_all([spawn_named(name, chore, name, t * scale)])[0].value)
        return done

    return traced(body)


def sleepers(count: int = 10_000, seconds: float = 1.0) -> Run:
    """`count` greenlets each sleeping `seconds`, all at once; the value is how many finished."""
    check_int("count", count, 1, _MAX_GREENLETS)
    check_float("seconds", seconds, 0.0, 10.0)

    def body() -> int:
        glets = [gevent.spawn(gevent.sleep, seconds) for _ in range(count)]
        join_all(glets)
        return sum(g.successful() for g in glets)

    return traced(body)


def switch_cost(rounds: int = 10_000) -> dict[str, float]:
    """What one switch costs here, untraced and under the recorder: two greenlets ping-pong
    through the hub with ``gevent.sleep(0)`` for `rounds` rounds each, timed both ways."""
    check_int("rounds", rounds, 100, 1_000_000)

    def ping() -> None:
        for _ in range(rounds):
            gevent.sleep(0)

    def timed() -> float:
        started = time.perf_counter_ns()
        join_all([gevent.spawn(ping), gevent.spawn(ping)])
        return time.perf_counter_ns() - started

    timed()  # warm up: the hub and both code paths exist before anything is timed
    untraced = min(timed() for _ in range(3))
    recorder = GreenletRecorder()
    with recorder:
        traced_ns = timed()
    switches = max(1, recorder.switches)
    return {"switches": switches, "ns per switch": untraced / switches,
            "ns per switch, recorded": traced_ns / switches}


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

    join_all([gevent.spawn(work, chr(ord("A") + i)) for i in range(workers)])
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
    check_choice("yield_inside", yield_inside, (True, False))
    check_choice("lock", lock, (True, False))
    state = {"counter": 0}
    guard = gevent.lock.Semaphore()

    def add() -> None:
        for _ in range(increments):
            if lock and not guard.acquire(timeout=JOIN_TIMEOUT_SECONDS):  # bounded, as every wait
                raise TimeoutError("the lock was not released in time")
            value = state["counter"]
            if yield_inside:
                gevent.sleep(0)
            state["counter"] = value + 1
            if lock:
                guard.release()

    join_all([gevent.spawn(add) for _ in range(workers)])
    expected = workers * increments
    return {"expected": expected, "counted": state["counter"], "lost": expected - state["counter"]}


def _sleep0() -> None:
    gevent.sleep(0)


# -- CPU work blocks the hub --------------------------------------------------------------------
def beside_ticker(work: Callable[..., Any], *args: Any, limit: float = 30.0) -> Run:
    """Run ``work(*args)`` in a greenlet next to a ticker that wants to run every 10 ms.

    The value reports the ticker's worst lateness and its 90th percentile in ms (the percentile
    ignores the odd tick the operating system delayed by giving the core to another program), how
    many ticks ran, what `work` returned, and how long it took (``work ms``, yields included).
    `limit` bounds the whole run, in seconds.
    """
    check_callable("work", work)
    check_timeout("limit", limit)
    lateness: list[float] = []
    finished = Event()
    result: dict[str, Any] = {}

    def ticker() -> None:
        start = time.perf_counter()
        tick = 1
        while not finished.is_set():
            due = start + tick * _TICK_SECONDS
            gevent.sleep(max(0.0, due - time.perf_counter()))
            lateness.append(time.perf_counter() - due)
            tick += 1

    def compute() -> None:
        try:
            gevent.sleep(2 * _TICK_SECONDS)  # let the ticker show its regular beat first
            started = time.perf_counter()
            result["returned"] = work(*args)
            result["work ms"] = 1000 * (time.perf_counter() - started)
            gevent.sleep(2 * _TICK_SECONDS)
        finally:
            finished.set()

    def body() -> dict[str, Any]:
        join_all([spawn_named("ticker", ticker), spawn_named("compute", compute)], limit)
        ordered = sorted(lateness) or [0.0]
        return {"worst lateness ms": 1000 * ordered[-1],
                "p90 lateness ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
                "ticks": len(lateness), "returned": result.get("returned"),
                "work ms": result.get("work ms", 0.0)}

    return traced(body)


def cpu_blocks(cpu_seconds: float = 0.3, yield_every: int | None = None,
               yield_with: str = "sleep(0)") -> Run:
    """A ticker that wants to run every 10 ms, next to a greenlet computing for `cpu_seconds`.

    ``yield_every`` is how many `cpu_task` iterations the computation does between two yields
    (None: never). ``yield_with`` is ``"sleep(0)"`` (``gevent.sleep(0)``: the greenlet goes to
    the back of the hub's queue of callbacks; the hub runs callbacks and, after every 50 of them,
    checks whether the switch interval has passed before it looks at timers and sockets) or
    ``"idle"`` (``gevent.idle()``: wait until the hub has nothing else to do, timers included).
    The value is `beside_ticker`'s, plus ``chunk ms``, the work between two yields.
    """
    check_float("cpu_seconds", cpu_seconds, 0.0, 5.0)
    check_choice("yield_with", yield_with, YIELDS)
    pause = gevent.idle if yield_with == "idle" else _sleep0
    total = iterations_for(cpu_seconds)
    chunk = total if yield_every is None else check_int("yield_every", yield_every, 1,
                                                        MAX_ITERATIONS)

    def compute() -> int:
        done = 0
        while done < total:
            step = min(chunk, total - done)
            cpu_task(step)
            done += step
            if yield_every is not None:
                pause()
        return done

    run = beside_ticker(compute)
    run.value["chunk ms"] = 1000 * cpu_seconds * min(chunk, max(total, 1)) / max(total, 1)
    return run
