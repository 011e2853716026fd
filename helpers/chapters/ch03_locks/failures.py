"""When locks go wrong: a deadlock that a timeout detects and breaks, and a holder that is killed.

Data flow of `deadlock_demo` (two workers, two locks)::

    worker 1: A ──hold──> wait for B ─┐            worker 2: B ──hold──> wait for A ─┐
                                      │ each holds what the other waits for         │
                                      └── acquire(timeout) returns False ───────────┘
              release A, back off, retry                     release B, back off longer, retry
    opposite orders: each reports how many deadlocks it detected (≥ 1 normally)
    same order (A then B for both): the second never waits for the first's lock: 0, always

Data flow of `killed_holder`::

    worker 1: takes the lock, sets `holding`, holds it until `stop` is set
    workers 2…: wait for `holding`, then lock.acquire(timeout)
    kernel:  holding.wait() ──> worker 1.terminate()   (how="terminate": SIGTERM, no cleanup)
                            or  stop.set()             (how="stop": worker 1 releases and ends)
    terminate: nobody ever releases the lock: every acquire(timeout) returns False, even the
    kernel's own; stop: each waiter gets it in turn

Data flow of `killed_writer` (one Queue)::

    worker 1: q.put(4 MiB) ──> its feeder thread takes the queue's write lock, writes into the
              pipe until the pipe is full (64 KiB on Linux), blocks: nobody reads yet
    kernel:   waits until the pipe has bytes (not q.empty()) ──> worker 1.terminate() ──> go.set()
    worker 2: q.put("hello") returns at once; its feeder waits for the write lock: for ever
    worker 3: q.get(timeout) finds bytes, reads a 4 MiB header, then waits for the rest: for ever
    kernel:   gives up on worker 3 after its timeout and a second, stops it
"""

from __future__ import annotations

import queue as queue_module
import time
from dataclasses import dataclass, field

from helpers.course import check_choice, check_float, check_int
from helpers.runners import Failure, explain_exitcode
from helpers.timeline import Recorder, Trace

from .primitives import SECONDS_RANGE, TIMEOUT_RANGE
from .workers import WAIT_SECONDS, Workers, checked, spin

__all__ = ["HOLD_LIMIT_SECONDS", "HOW", "LockStory", "deadlock_demo", "hold", "killed_holder",
           "killed_writer", "receive", "send_big", "send_small", "take_two", "try_lock"]

# A worker that has backed off this many times gives up: with a back-off that differs between
# the workers, the second attempt always gets through; more means something else is wrong.
ATTEMPTS = 5
HOW = ("terminate", "stop")
# How long the holder holds the lock at most, if nobody stops it: longer than any demo waits.
HOLD_LIMIT_SECONDS = 30.0
# What the killed writer puts: far more than a pipe holds (64 KiB on Linux, at most 1 MiB when
# raised), so its feeder thread is surely blocked in the middle of the write when it is killed.
_BIG_BYTES = 4 * 2**20
# How long the kernel waits, beyond the reader's own timeout, before it calls the reader stuck.
_STUCK_GRACE_SECONDS = 1.0


@checked(hold_s=SECONDS_RANGE, timeout=TIMEOUT_RANGE, backoff_s=SECONDS_RANGE)
def take_two(rec, locks, order, hold_s, timeout, backoff_s):
    """Take locks[order[0]], then locks[order[1]]. If the second does not come within `timeout`
    s, assume a deadlock: give the first back, back off `backoff_s` s and try again."""
    first, second = locks[order[0]], locks[order[1]]
    for attempt in range(ATTEMPTS):
        with rec.span(f"waiting for {order[0]}", "lock"):
            if not first.acquire(timeout=timeout):
                continue
        with rec.span(f"holding {order[0]}", "run"):
            spin(hold_s)
        with rec.span(f"waiting for {order[1]}", "lock"):
            got_both = second.acquire(timeout=timeout)
        if got_both:
            with rec.span("holding both", "run"):
                spin(hold_s)
            second.release()
            first.release()
            return attempt  # how many deadlocks it detected on the way
        first.release()  # deadlock detected: give back what we hold, so the other can go on
        with rec.span("backing off", "io"):
            time.sleep(backoff_s)
    raise TimeoutError(f"still deadlocked after {ATTEMPTS} attempts")


@checked(hold_s=(0.0, HOLD_LIMIT_SECONDS))
def hold(rec, lock, holding, stop, hold_s):
    """Take the lock, say so (`holding`), and hold it until `stop` is set or `hold_s` s pass."""
    with rec.span("waiting for the lock", "lock"):
        if not lock.acquire(timeout=WAIT_SECONDS):
            raise TimeoutError("the lock never came")
    holding.set()
    try:
        with rec.span("holding the lock", "io"):
            stop.wait(timeout=hold_s)
    finally:
        lock.release()


@checked(timeout=TIMEOUT_RANGE)
def try_lock(rec, lock, holding, timeout):
    """Once the holder has the lock, try to take it for at most `timeout` s; True if we got it."""
    if not holding.wait(timeout=WAIT_SECONDS):
        raise TimeoutError("nobody took the lock")
    with rec.span("waiting for the lock", "lock"):
        got = lock.acquire(timeout=timeout)
    if got:
        with rec.span("holding the lock", "run"):
            spin(0.01)
        lock.release()
    return got


def send_big(rec, q, size):
    """Put `size` bytes on `q`, then wait to be terminated (its feeder thread does the sending)."""
    with rec.span("q.put(big): the feeder sends it", "send"):
        q.put(bytes(size))
        time.sleep(HOLD_LIMIT_SECONDS)  # the kernel terminates us long before


@checked(timeout=TIMEOUT_RANGE)
def send_small(rec, q, go, timeout):
    """Once `go` is set, put a small item on `q`; says so when put() returned."""
    if not go.wait(timeout=WAIT_SECONDS):
        raise TimeoutError("the kernel never said go")
    with rec.span("q.put('hello') returns at once", "send"):
        q.put("hello")
    # Our feeder thread now waits for the queue's write lock, held by a dead process. Without
    # this, this process could not even exit: at exit it waits for its feeder to finish.
    q.cancel_join_thread()
    return "put() returned"


@checked(timeout=TIMEOUT_RANGE)
def receive(rec, q, go, timeout):
    """Once `go` is set, q.get(timeout=`timeout`): what came, or "Empty" if nothing did."""
    if not go.wait(timeout=WAIT_SECONDS):
        raise TimeoutError("the kernel never said go")
    with rec.span(f"q.get(timeout={timeout:g})", "wait"):
        try:
            item = q.get(timeout=timeout)
        except queue_module.Empty:
            return "Empty"
    return f"{type(item).__name__} of {len(item):,}"


@dataclass
class LockStory:
    """What the workers of one failure demo did: values in worker order, failures (what a worker
    raised, or how it ended), the timeline."""

    title: str
    values: list
    failures: dict[int, Failure]
    exitcodes: list
    seconds: float
    lanes: list[str]
    trace: Trace = field(repr=False, default_factory=Trace)
    kernel_got_lock: bool | None = None

    def __str__(self) -> str:
        lines = [f"{self.title} ({self.seconds:.2f} s)"]
        for index, lane in enumerate(self.lanes):
            if index in self.failures:
                lines.append(f"  {lane}: {self.failures[index]}")
            else:
                lines.append(f"  {lane}: {self.values[index]!r} "
                             f"(exit code {self.exitcodes[index]})")
        if self.kernel_got_lock is not None:
            lines.append(f"  the kernel's own lock.acquire(timeout=0.1) afterwards: "
                         f"{self.kernel_got_lock}")
        return "\n".join(lines)


def deadlock_demo(opposite: bool = True, *, hold_s: float = 0.05, timeout: float = 0.5,
                  start_method: str | None = None) -> LockStory:
    """Two workers take locks A and B, in opposite orders (a deadlock) or in the same order."""
    check_float("hold_s", hold_s, 0.001, 1.0)
    check_float("timeout", timeout, 0.01, 10.0)
    orders = [("A", "B"), ("B", "A") if opposite else ("A", "B")]
    started = time.perf_counter()
    with Workers(start_method) as w:
        locks = {"A": w.ctx.Lock(), "B": w.ctx.Lock()}
        for index, order in enumerate(orders):
            # Different back-offs: two workers that retried in step would deadlock again.
            w.add(take_two, locks, order, hold_s, timeout, index * 4 * hold_s)
        w.run(ATTEMPTS * (timeout + 8 * hold_s) + WAIT_SECONDS, keep_failures=True)
    how = "opposite orders" if opposite else "the same order"
    return LockStory(f"two workers, locks A and B taken in {how}: deadlocks each detected",
                     w.results(), w.failures, w.exitcodes, time.perf_counter() - started,
                     w.lanes(), w.trace)


def killed_holder(how: str = "terminate", *, waiters: int = 2, timeout: float = 1.0,
                  start_method: str | None = None) -> LockStory:
    """Worker 1 holds a lock; the kernel terminates it (or asks it to stop); the others try."""
    check_choice("how", how, HOW)
    check_int("waiters", waiters, 1, 8)
    check_float("timeout", timeout, 0.01, 10.0)
    started = time.perf_counter()
    with Workers(start_method) as w:
        lock, holding, stop = w.ctx.Lock(), w.ctx.Event(), w.ctx.Event()
        w.add(hold, lock, holding, stop, HOLD_LIMIT_SECONDS)  # hold(rec, lock, ...)
        for _ in range(waiters):
            w.add(try_lock, lock, holding, timeout)
        w.launch()
        if not holding.wait(WAIT_SECONDS):
            raise TimeoutError("worker 1 never took the lock")
        seen_ns = time.perf_counter_ns()
        time.sleep(min(0.1, timeout / 4))  # the waiters are now waiting
        acted_ns = time.perf_counter_ns()
        if how == "terminate":
            w.processes[0].terminate()  # SIGTERM: no finally, no release
            w.processes[0].join(WAIT_SECONDS)
        else:
            stop.set()  # asked: worker 1 leaves its wait, and its finally releases the lock
        w.join(timeout + WAIT_SECONDS)
        kernel_got = lock.acquire(timeout=0.1)  # and the kernel itself?
        if kernel_got:
            lock.release()
    return _holder_story(w, how, seen_ns, acted_ns, kernel_got, started)


def _holder_story(w: Workers, how: str, seen_ns: int, acted_ns: int, kernel_got: bool,
                  started: float) -> LockStory:
    """The story of `killed_holder`; a terminated holder's spans died with it, so its lane shows
    what the kernel saw instead: from "I hold it" to the terminate() call."""
    lanes = w.lanes()
    if how == "terminate":
        kernel = Recorder(lanes[0] + " (seen by the kernel)", cpus=False)
        kernel.add("holding the lock, until terminated", "io", seen_ns, acted_ns)
        w.trace.extend(kernel.recording())
        lanes[0] = kernel.lane
    title = ("worker 1 terminated while holding the lock" if how == "terminate"
             else "worker 1 asked to stop (an Event), releases the lock")
    return LockStory(f"{title}: did each waiter get the lock?", w.results(), w.failures,
                     w.exitcodes, time.perf_counter() - started, lanes, w.trace, kernel_got)


def killed_writer(*, timeout: float = 0.5, start_method: str | None = None) -> LockStory:
    """Worker 1 is terminated in the middle of sending a big item on a Queue; worker 2 then puts
    a small item and worker 3 tries to get one, with a timeout."""
    check_float("timeout", timeout, 0.01, 10.0)
    started = time.perf_counter()
    with Workers(start_method) as w:
        q, go = w.ctx.Queue(), w.ctx.Event()
        w.add(send_big, q, _BIG_BYTES)  # send_big(rec, q, size)
        w.add(send_small, q, go, timeout)
        w.add(receive, q, go, timeout)
        w.launch()
        _wait_until_sending(q)
        seen_ns = time.perf_counter_ns()
        time.sleep(min(0.1, timeout / 4))  # the pipe is full: worker 1's feeder is blocked
        w.processes[0].terminate()  # its feeder thread dies holding the write lock
        w.processes[0].join(WAIT_SECONDS)
        killed_ns = time.perf_counter_ns()
        go.set()  # now worker 2 puts and worker 3 gets
        stuck_ns = None
        try:
            w.join(timeout + _STUCK_GRACE_SECONDS)
        except TimeoutError:  # worker 3 is still inside q.get(timeout=...)
            stuck_ns = time.perf_counter_ns()
        q.close()
    return _writer_story(w, timeout, seen_ns, killed_ns, stuck_ns, started)


def _wait_until_sending(q) -> None:
    """Return once the queue's pipe holds bytes: worker 1's feeder thread has begun writing."""
    deadline = time.perf_counter() + WAIT_SECONDS
    while q.empty():
        if time.perf_counter() > deadline:
            raise TimeoutError("worker 1 never began to send")
        time.sleep(0.01)


def _writer_story(w: Workers, timeout: float, seen_ns: int, killed_ns: int,
                  stuck_ns: int | None, started: float) -> LockStory:
    """The story of `killed_writer`: lanes the kernel draws for the terminated writer (its own
    spans died with it) and, if it got stuck, for the reader the kernel stopped."""
    lanes = w.lanes()
    failures = dict(w.failures)
    if stuck_ns is not None:
        failures[2] = Failure("Stuck", f"still inside q.get(timeout={timeout:g}) after "
                                       f"{(stuck_ns - killed_ns) / 1e9:.1f} s: stopped by "
                                       f"the kernel")
        kernel_reader = Recorder(lanes[2] + " (seen by the kernel)", cpus=False)
        kernel_reader.add(f"inside q.get(timeout={timeout:g})", "wait", killed_ns, stuck_ns)
        w.trace.extend(kernel_reader.recording())
        lanes[2] = kernel_reader.lane
    kernel = Recorder(lanes[0] + " (seen by the kernel)", cpus=False)
    kernel.add("sending (pipe full), until terminated", "send", seen_ns, killed_ns)
    w.trace.extend(kernel.recording())
    lanes[0] = kernel.lane
    failures[0] = Failure("ProcessDied", f"terminated while sending "
                                         f"({explain_exitcode(w.exitcodes[0])})")
    return LockStory("worker 1 terminated while sending on a Queue: what the others got",
                     w.results(), failures, w.exitcodes, time.perf_counter() - started, lanes,
                     w.trace)
