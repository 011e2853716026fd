"""The worker functions of chapter 03's primitive demos, and the questions a timeline answers.

Each worker takes a `Recorder` first and records what it does: ``lock`` while it waits to acquire
a lock or a semaphore, ``wait`` while it waits on an event, a condition or a barrier, ``run``
while it computes, ``io`` while it sleeps. The notebook creates the primitive and the processes
itself (through `Workers`) and shows these functions' source (`show_source`), so the API is
on the page::

    with Workers(start_method) as w:             # the kernel
        sem = w.ctx.Semaphore(2)
        for _ in range(4):
            w.add(limited, sem, 3, 0.05)         # worker: limited(rec, sem, 3, 0.05)
        w.run()
    most_at_once(w.trace, "inside")              # 2: the semaphore's limit, measured

Every acquire and wait has a timeout (`WAIT_SECONDS`): a stuck worker raises, reports, and the
kernel goes on. ``with lock:`` waits without one; the kernel's own wait for the workers is
bounded, and it stops them if they are stuck.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from helpers.timeline import Event, Trace

from .workers import WAIT_SECONDS, checked, spin

# How often a demo worker may repeat its step, and how long one step (a hold, a sleep, a piece of
# work) may last: the demos use 2-6 rounds of milliseconds; beyond these a value is a typo (ms
# given as s) that would keep a reader's kernel busy for minutes.
MAX_ROUNDS = 1000
MAX_STEP_SECONDS = 10.0
# The (low, high) ranges `@checked` states for the workers' parameters. A timeout is at least a
# millisecond (zero would only poll) and at most a minute, the kernel's default wait for a demo.
TIMEOUT_RANGE = (0.001, 60.0)
ROUNDS_RANGE = (1, MAX_ROUNDS)
SECONDS_RANGE = (0.0, MAX_STEP_SECONDS)

# `waits` leaves out waits shorter than this: an uncontended acquire takes microseconds, so a
# wait of a millisecond or more means the lock was taken and the worker really waited.
SHORTEST_WAIT_MS = 1.0

__all__ = [
    "MAX_ROUNDS",
    "MAX_STEP_SECONDS",
    "ROUNDS_RANGE",
    "SECONDS_RANGE",
    "SHORTEST_WAIT_MS",
    "TIMEOUT_RANGE",
    "consume",
    "handoffs",
    "in_phases",
    "limited",
    "most_at_once",
    "nested",
    "prepare_then_signal",
    "produce",
    "take_turns",
    "wait_for_signal",
    "waits",
]


# -- Lock: one at a time ---------------------------------------------------------------------
@checked(rounds=ROUNDS_RANGE, hold_s=SECONDS_RANGE, away_s=SECONDS_RANGE)
def take_turns(rec, lock, rounds, hold_s, away_s):
    """Take the lock `rounds` times: hold it `hold_s` s computing, then `away_s` s elsewhere."""
    for _ in range(rounds):
        with rec.span("waiting for the lock", "lock"):
            if not lock.acquire(timeout=WAIT_SECONDS):
                raise TimeoutError("the lock never came")
        try:
            with rec.span("holding the lock", "run"):
                spin(hold_s)
        finally:
            lock.release()
        with rec.span("elsewhere", "io"):
            time.sleep(away_s)


# -- RLock: the owner may take it again ------------------------------------------------------
@checked(hold_s=SECONDS_RANGE, inner_timeout=TIMEOUT_RANGE)
def nested(rec, lock, hold_s, inner_timeout):
    """Take `lock`, then take it again inside, as a function calling a function would."""
    with rec.span("acquire (outer)", "lock"):
        if not lock.acquire(timeout=WAIT_SECONDS):
            raise TimeoutError("the lock never came")
    try:
        with rec.span("holding it", "run"):
            spin(hold_s)
        with rec.span("acquire again (inner)", "lock"):
            again = lock.acquire(timeout=inner_timeout)
        if again:
            with rec.span("holding it twice", "run"):
                spin(hold_s)
            lock.release()  # an RLock is free again only after as many releases as acquires
    finally:
        lock.release()
    return again


# -- Semaphore: at most k at once ------------------------------------------------------------
@checked(rounds=ROUNDS_RANGE, inside_s=SECONDS_RANGE)
def limited(rec, sem, rounds, inside_s):
    """Enter the section `rounds` times; the semaphore lets only its value in at once."""
    for _ in range(rounds):
        with rec.span("waiting for a place", "lock"):
            if not sem.acquire(timeout=WAIT_SECONDS):
                raise TimeoutError("no place came free")
        try:
            with rec.span("inside", "io"):
                time.sleep(inside_s)  # e.g. a download: at most k connections to one server
        finally:
            sem.release()


# -- Event: wait until someone says go -------------------------------------------------------
@checked(prepare_s=SECONDS_RANGE)
def prepare_then_signal(rec, event, prepare_s):
    """Prepare for `prepare_s` s, then set the event; returns when (ns, just before the set)."""
    with rec.span("preparing", "run"):
        spin(prepare_s)
    set_ns = time.perf_counter_ns()
    event.set()
    return set_ns


@checked(work_s=SECONDS_RANGE)
def wait_for_signal(rec, event, work_s):
    """Wait until the event is set, then work for `work_s` s."""
    with rec.span("waiting for the event", "wait"):
        if not event.wait(timeout=WAIT_SECONDS):
            raise TimeoutError("the event was never set")
    with rec.span("working", "run"):
        spin(work_s)


# -- Condition: wait until a shared state is right -------------------------------------------
@checked(count=ROUNDS_RANGE, make_s=SECONDS_RANGE)
def produce(rec, cond, items, count, make_s):
    """Make `count` items, one every `make_s` s; wake one waiting consumer per item."""
    for _ in range(count):
        with rec.span("making an item", "run"):
            spin(make_s)
        with cond:  # the condition's lock guards `items`
            with rec.span("notify", "send"):  # an instant: a tick on the timeline
                items.value += 1
                cond.notify()


@checked(count=ROUNDS_RANGE, use_s=SECONDS_RANGE)
def consume(rec, cond, items, count, use_s):
    """Take `count` items as they come, using each for `use_s` s."""
    for _ in range(count):
        with rec.span("waiting for an item", "wait"):
            with cond:
                if not cond.wait_for(lambda: items.value > 0, timeout=WAIT_SECONDS):
                    raise TimeoutError("no item came")
                items.value -= 1
        with rec.span("using the item", "run"):
            spin(use_s)


# -- Barrier: everyone finishes a phase before anyone starts the next ------------------------
@checked(phases=ROUNDS_RANGE, work_s=SECONDS_RANGE)
def in_phases(rec, barrier, phases, work_s):
    """Work `work_s` s per phase, then wait at the barrier for the others."""
    for phase in range(1, phases + 1):
        with rec.span(f"phase {phase}", "run"):
            spin(work_s)
        with rec.span("at the barrier", "wait"):
            barrier.wait(timeout=WAIT_SECONDS)  # BrokenBarrierError if the others never come


# -- what the timeline says ------------------------------------------------------------------
def _spans(trace: Trace | Iterable[Event], label: str, name: str = "label") -> list[Event]:
    if not isinstance(label, str) or not label:
        raise ValueError(f"{name} must be a span label (a non-empty string), got {label!r}")
    if isinstance(trace, (str, bytes)):
        raise TypeError(f"trace must be a Trace or a list of Events, got {trace!r}")
    events = trace.events if isinstance(trace, Trace) else list(trace)
    if not all(isinstance(e, Event) for e in events):
        raise TypeError("trace must be a Trace or a list of Events")
    return [e for e in events if e.label == label]


def most_at_once(trace: Trace | Iterable[Event], label: str) -> int:
    """The most spans labelled `label` that were open at the same instant (across all lanes)."""
    edges = []
    for e in _spans(trace, label):
        edges.append((e.start_ns, 1))
        edges.append((e.end_ns, -1))
    edges.sort(key=lambda edge: (edge[0], edge[1]))  # an end before a start at the same ns
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def handoffs(trace: Trace | Iterable[Event], wait_label: str,
             hold_label: str) -> list[tuple[Event, Event]]:
    """(hold, wait) pairs: each real wait, and the other lane's hold that ended it.

    The holder is the lane whose `hold_label` span ended last before the wait ended (and after it
    began): the one that released what the waiter then got. Waits shorter than
    `SHORTEST_WAIT_MS` (the lock was free) and waits no hold explains are left out.
    """
    waits_found = _spans(trace, wait_label, "wait_label")
    holds = _spans(trace, hold_label, "hold_label")
    found = []
    for wait in sorted(waits_found, key=lambda e: e.end_ns):
        if wait.duration_ns < SHORTEST_WAIT_MS * 1e6:
            continue
        before = [h for h in holds if h.lane != wait.lane and wait.start_ns <= h.end_ns
                  <= wait.end_ns]
        if before:
            found.append((max(before, key=lambda h: h.end_ns), wait))
    return found


def waits(trace: Trace | Iterable[Event], wait_label: str,
          hold_label: str) -> list[tuple[str, float, str]]:
    """Who waited for whom: (waiter's lane, ms waited, lane that held it when the wait ended).

    The holder is found as in `handoffs` ("?" if no hold explains the wait). Waits shorter than
    `SHORTEST_WAIT_MS` are left out.
    """
    events = trace.events if isinstance(trace, Trace) else list(trace)
    holder_of = {id(wait): hold.lane for hold, wait in handoffs(events, wait_label, hold_label)}
    return [(wait.lane, wait.duration_ns / 1e6, holder_of.get(id(wait), "?"))
            for wait in sorted(_spans(events, wait_label, "wait_label"), key=lambda e: e.end_ns)
            if wait.duration_ns >= SHORTEST_WAIT_MS * 1e6]
