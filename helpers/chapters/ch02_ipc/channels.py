"""Queue and Pipe up close: what they are made of, what crosses them, what it costs.

A `multiprocessing.Queue` is built from pieces you can name (CPython's multiprocessing/queues.py)::

    producer process                                                consumer process
    ----------------                                                ----------------
    q.put(obj) ──> buffer (a deque) ──> feeder thread:              q.get():
                   put() returns at      pickle.dumps(obj)            take the read lock
                   once                  take the write lock          recv_bytes() from the pipe
                                         send_bytes() into the  ────> pickle.loads() -> a NEW object
                                         pipe (OS buffer, ~64 KiB)
    (a bounded semaphore counts the items, for Queue(maxsize))

A `Pipe` is just the two `Connection` ends of that OS pipe (or socket pair, when duplex):
``send``/``recv`` pickle, ``send_bytes``/``recv_bytes`` move raw bytes. Because a Queue pickles
in its feeder thread, a put() of something unpicklable does not raise: the thread prints the
error and the item is gone — `feeder_error` shows it in a child, where the print is captured.
"""

from __future__ import annotations

import io
import pickle
import queue as queue_module
import statistics
import sys
import threading
import time
from multiprocessing.reduction import ForkingPickler
from typing import Any

import numpy as np

from helpers.course import check_int, check_start_method, mp_context
from helpers.runners.cleanup import close_queue, ignore_sigint, queue_parts, release_semaphores

from .common import Table, format_bytes, format_rate, started

__all__ = [
    "PING_KINDS",
    "pickle_failures",
    "pickling_costs",
    "queue_anatomy",
    "check_picklable",
    "round_trips",
    "run_feeder_error",
]

# A child waits at most this long for its next message: a parent that went away is noticed.
_CHILD_WAIT_SECONDS = 30.0
# The channels a ping-pong compares: the two queues and the pipe they are built on.
PING_KINDS = ("Queue", "Pipe", "SimpleQueue")
# How long the feeder-error child waits for an item that never comes.
_NEVER_COMES_SECONDS = 0.5
# A lambda at module top level, like one typed in a notebook cell: pickle stores a function by its
# qualified name, and "<lambda>" names nothing it could look up again.
_A_LAMBDA = lambda x: x  # noqa: E731


# -- workers: the targets of the chapter's Process calls. Module level, so every start method finds
# them; not in __all__, as nothing in this process calls them. -----------------------------------
def mutate_and_return(inbox: Any, outbox: Any) -> None:
    """Receive one object, change it, send it back with the id it had in this process."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    obj = inbox.get(timeout=_CHILD_WAIT_SECONDS)
    child_id = id(obj)
    if isinstance(obj, dict):
        obj["changed by"] = "the child"
    elif isinstance(obj, list):
        obj.append("added by the child")
    outbox.put((obj, child_id))


def put_big(queue: Any, nbytes: int) -> None:
    """Put one message of `nbytes` bytes, then return (and try to exit)."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    queue.put(b"x" * nbytes)


def echo(kind: str, inbox: Any, outbox: Any) -> None:
    """Send back every message received, until ``None``. For a Pipe, inbox is outbox."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    while True:
        if kind == "Pipe":
            if not inbox.poll(_CHILD_WAIT_SECONDS):
                return
            message = inbox.recv()
        elif kind == "Queue":
            message = inbox.get(timeout=_CHILD_WAIT_SECONDS)
        else:  # SimpleQueue.get() has no timeout; the parent always ends with None
            message = inbox.get()
        if message is None:
            return
        outbox.send(message) if kind == "Pipe" else outbox.put(message)


def feeder_error(results: Any) -> None:
    """Put a generator on a Queue and report what happened: put() returned, the feeder printed."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    captured = io.StringIO()
    sys.stderr = captured  # the feeder thread prints its traceback here, not into a notebook
    import multiprocessing

    q = multiprocessing.Queue()  # used within this process only: any context will do
    report: dict[str, Any] = {}
    try:
        q.put(x for x in range(3))
        report["put() returned"] = True
        try:
            q.get(timeout=_NEVER_COMES_SECONDS)
            report["get()"] = "got the item"
        except queue_module.Empty:
            report["get()"] = f"nothing came within {_NEVER_COMES_SECONDS} s (queue.Empty)"
    finally:
        close_queue(q)
        release_semaphores(q)
        sys.stderr = sys.__stderr__
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    report["the feeder thread printed"] = lines[-1] if lines else "(nothing)"
    results.put(report)


# -- demos run from the kernel ---------------------------------------------------------------------
def queue_anatomy(start_method: str | None = None) -> Table:
    """The parts of a fresh `Queue`, before and after its first put() (CPython's internal names,
    read through the cleanup seam: a part this Python lacks shows as not available)."""
    ctx = mp_context(check_start_method(start_method))
    q = ctx.Queue()
    try:
        part = queue_parts(q)  # {"_reader": ..., "_writer": ..., "_thread": ...}
        rows = Table([
            {"part": "q._reader, q._writer", "what it is": _described(part, "_reader", lambda r:
                f"{type(r).__name__} pair (readable={r.readable}, writable="
                f"{part['_writer'].writable}): the two ends of one OS pipe")},
            {"part": "q._rlock, q._wlock", "what it is": _described(part, "_rlock", lambda lock:
                f"{type(lock).__name__}s: one reader and one writer at a time")},
            {"part": "q._sem", "what it is": _described(part, "_sem", lambda sem:
                f"{type(sem).__name__}: counts free places, so put() blocks at maxsize")},
            {"part": "q._thread before put()", "what it is": _described(part, "_thread", repr)},
        ])
        q.put("hello")
        rows.append({"part": "q._thread after put()", "what it is": _described(
            queue_parts(q), "_thread",
            lambda t: f"{t.name} (daemon={t.daemon}): pickles and writes")})
        q.get(timeout=10)
        return rows
    finally:
        close_queue(q)
        release_semaphores(q)


def _described(parts: dict, name: str, describe) -> str:
    """``describe(parts[name])``, or what to show where this Python's Queue has no such part."""
    try:
        return describe(parts[name])
    except (KeyError, AttributeError):
        return "(not available in this Python)"


def pickle_failures() -> Table:
    """What cannot cross a Queue or a Pipe: each object, and the error pickling it raises."""
    ctx = mp_context(None)
    with open(__file__, encoding="utf-8") as handle:
        candidates = [
            ("a lambda", _A_LAMBDA),
            ("a threading.Lock", threading.Lock()),
            ("an open file", handle),
            ("a generator", (x for x in range(3))),
            ("a multiprocessing.Lock (sent, not inherited)", ctx.Lock()),
        ]
        rows = Table()
        for name, obj in candidates:
            try:
                ForkingPickler.dumps(obj)  # what Queue, Pipe and Pool use to pickle
                rows.append({"object": name, "error": "(pickled fine)", "message": ""})
            except Exception as exc:
                rows.append({"object": name, "error": type(exc).__name__,
                             "message": str(exc).split(" at 0x")[0]})
    release_semaphores(candidates[-1][1])
    return rows


def run_feeder_error(start_method: str | None = None) -> dict[str, Any]:
    """Run `feeder_error` in a child and return its report."""
    ctx = mp_context(check_start_method(start_method))
    results = ctx.Queue()
    try:
        with started(ctx.Process(target=feeder_error, args=(results,))):
            return results.get(timeout=30)
    finally:
        close_queue(results)
        release_semaphores(results)


def round_trips(rounds: int = 1000, *, start_method: str | None = None,
                message: Any = b"x" * 64) -> Table:
    """Ping-pong: the kernel sends `message`, a child sends it back, `rounds` times per kind."""
    check_int("rounds", rounds, 10, 100_000)
    check_picklable("message", message)
    ctx = mp_context(check_start_method(start_method))
    rows = Table()
    for kind in PING_KINDS:
        times = ping_pong(ctx, kind, rounds, message)
        rows.append({"channel": kind, "median round trip": f"{statistics.median(times):.1f} µs",
                     "90th percentile": f"{np.percentile(times, 90):.1f} µs",
                     "round trips/s": f"{1e6 / statistics.median(times):,.0f}"})
    return rows


def check_picklable(name: str, value: Any) -> Any:
    """Return `value` if it can cross a Queue or a Pipe, else raise TypeError naming `name`.

    Pickled here, in the caller: a Queue pickles in its feeder thread, which only prints the
    error, so an unpicklable message would otherwise surface as a `queue.Empty` after the
    receiver's whole timeout.
    """
    try:
        ForkingPickler.dumps(value)  # what Queue, Pipe and Pool use to pickle
    except Exception as exc:  # PicklingError, TypeError, AttributeError: any refusal
        reason = str(exc).split(" at 0x")[0]
        raise TypeError(f"{name} must be picklable to cross a Queue or a Pipe "
                        f"({type(exc).__name__}: {reason}), got {value!r:.80}") from None
    return value


def ping_pong(ctx: Any, kind: str, rounds: int, message: Any) -> list[float]:
    if kind == "Pipe":
        mine, theirs = ctx.Pipe()
        send, recv = mine.send, mine.recv
        args, owners = (kind, theirs, theirs), [mine, theirs]
    else:
        make = ctx.Queue if kind == "Queue" else ctx.SimpleQueue
        to_child, from_child = make(), make()
        send = to_child.put
        recv = (lambda: from_child.get(timeout=_CHILD_WAIT_SECONDS)) if kind == "Queue" \
            else from_child.get
        args, owners = (kind, to_child, from_child), [to_child, from_child]
    times = []
    try:
        with started(ctx.Process(target=echo, args=args)):
            send(message)
            recv()  # the first round trip includes the child's start: not counted
            for _ in range(rounds):
                t = time.perf_counter_ns()
                send(message)
                recv()
                times.append((time.perf_counter_ns() - t) / 1000)
            send(None)
    finally:  # on any way out (an error, a timeout, an interrupt) every end is closed
        for owner in owners:
            if kind == "Queue":
                close_queue(owner)
            else:
                owner.close()  # a Connection, or a SimpleQueue's two ends
        release_semaphores(*owners)
    return times


def _payloads(nbytes: int) -> dict[str, Any]:
    n = nbytes // 8  # eight bytes per number in the array; the list and dict hold as many
    return {
        "bytes": bytes(nbytes),
        "list of ints": list(range(n)),
        "dict int -> int": dict.fromkeys(range(n // 4), 0),
        "numpy float64 array": np.arange(n, dtype=np.float64),
    }


def _best_seconds(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def pickling_costs(nbytes: int = 1 << 20, *, repeat: int = 5) -> Table:
    """Pickle and unpickle each payload (about `nbytes` of data each); the best of `repeat`."""
    check_int("nbytes", nbytes, 1 << 10, 256 << 20)
    check_int("repeat", repeat, 1, 100)
    rows = Table()
    for name, obj in _payloads(nbytes).items():
        blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        dumps = _best_seconds(lambda o=obj: pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL),
                              repeat)
        loads = _best_seconds(lambda b=blob: pickle.loads(b), repeat)
        rows.append(_cost_row(name, len(blob), dumps, loads, nbytes))
    array = np.arange(nbytes // 8, dtype=np.float64)
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(array, protocol=5, buffer_callback=buffers.append)
    dumps = _best_seconds(lambda: pickle.dumps(array, protocol=5, buffer_callback=list().append),
                          repeat)
    loads = _best_seconds(lambda: pickle.loads(head, buffers=buffers), repeat)
    rows.append(_cost_row("numpy array, protocol 5 out-of-band", len(head), dumps, loads, nbytes,
                          extra=f" + {len(buffers)} buffer of "
                                f"{format_bytes(buffers[0].raw().nbytes)}"))
    return rows


def _cost_row(name: str, size: int, dumps: float, loads: float, nbytes: int,
              extra: str = "") -> dict[str, str]:
    return {"payload": name, "pickle size": format_bytes(size) + extra,
            "dumps": f"{dumps * 1e3:.3f} ms", "loads": f"{loads * 1e3:.3f} ms",
            "data per second (dumps + loads)": format_rate(nbytes / (dumps + loads))}
