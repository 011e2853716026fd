"""The course's load generator and its misbehaving clients: asyncio, in a child, always bounded.

It runs in a child process (`handle.call`), never in the kernel, so the kernel's own event loop
and threads do not compete with it, and every run is bounded three ways: connections (at most
`MAX_CONNECTIONS`), rounds per connection, and seconds::

    load(targets, connections, rounds, size, seconds)          [warm_up: a second against an
                                                                echo server of its own, first]
                                                                per target, one after another:
      open `connections` connections (all of them first)  ──►  server
      then each: send one line, wait for the whole echo,        (gevent / threads / asyncio ...)
      note the latency, again, `rounds` times or until the deadline
      ──► requests/s, p50/p90/p99 latency, errors, a latency sample to plot

    hold_idle(port, steps, server_pid)   opens connections step by step, one round trip each,
                                          then reads the server's RSS: memory per idle client
    bad_clients(port, ...)               a silent client, half a line, a reader that leaves
                                          mid-reply, next to a good client that keeps asking

The clients are `asyncio.Protocol` objects, not streams: a callback per reply keeps the
generator's own cost per request low, so it can drive a server faster than a streams client.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from contextlib import nullcontext
from typing import Any

from ...course import LOOPBACK, check_float, check_int, check_loopback_host, check_timeout
from .limits import MAX_CONNECTIONS, raise_open_files
from .placement import cores_apart

__all__ = ["MAX_CONNECTIONS", "MAX_ROUNDS", "MAX_SECONDS", "MAX_SIZE", "bad_clients",
           "check_load", "hold_idle", "load"]

# Rounds per connection: the time bound, not this, ends a normal run; it bounds a fast one.
MAX_ROUNDS = 1_000_000
MAX_SIZE = 65_536  # one message fits one recv of every server
# A load run is bounded by this many seconds per server.
MAX_SECONDS = 30.0
# Holding idle clients, or watching bad ones, is bounded by this (a few seconds are enough).
_MAX_HOLD_SECONDS = 600.0
# The largest line a bad client sends: under the servers' 4 MiB line limit (servers.MAX_LINE).
_MAX_BIG = 4_000_000
# Linux process ids are at most 2**22 (pid_max's ceiling).
_MAX_PID = 2**22
# A child's open files: the connections it holds plus its own, within Linux's 2**30 ceiling.
_MAX_NOFILE = 2**30
# Opening this many connections at once stays under any listen backlog the servers set.
_CONNECT_BATCH = 500
# A reply not complete this long after the run's deadline counts as an error, not a wait.
_GRACE_SECONDS = 2.0
# An unrecorded load this long, at full strength, warms up a fresh generator before its first
# target. Measured on a 2-core VM: without it, the first server loaded by a new generator child
# got about two thirds of the requests/s of the next one (whichever server it was); sleeping
# first did not help, 0.3 s of load left most of that gap, 1 s closed it.
_WARM_UP_SECONDS = 1.0
# The latency sample sent back for plotting: this many quantiles describe the distribution.
_QUANTILES = 200


class _Pinger(asyncio.Protocol):
    """One connection of the load: send a line, wait for all of it to come back, repeat."""

    def __init__(self, message: bytes, rounds: int, latencies: list[int], go: asyncio.Event,
                 done: asyncio.Future, deadline: list[float]) -> None:
        self.message, self.rounds, self.latencies = message, rounds, latencies
        self.go, self.done, self.deadline = go, done, deadline
        self.got = self.sent_ns = self.completed = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self) -> None:
        self.sent_ns = time.perf_counter_ns()
        self.transport.write(self.message)

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got < len(self.message):
            return
        now = time.perf_counter_ns()
        self.latencies.append(now - self.sent_ns)
        self.completed += 1
        self.got -= len(self.message)
        if self.completed < self.rounds and time.monotonic() < self.deadline[0]:
            self.send()
        elif not self.done.done():
            self.done.set_result("ok")

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result("lost")


async def _open(loop, factory, host: str, port: int, count: int) -> tuple[list, dict[str, int]]:
    opened, errors = [], {}
    for first in range(0, count, _CONNECT_BATCH):
        batch = min(_CONNECT_BATCH, count - first)
        results = await asyncio.gather(
            *(loop.create_connection(factory, host, port) for _ in range(batch)),
            return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                name = f"connect: {type(result).__name__}"
                errors[name] = errors.get(name, 0) + 1
            else:
                opened.append(result)
    return opened, errors


async def _load_one(host: str, port: int, connections: int, rounds: int, size: int,
                    seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    message = b"x" * (size - 1) + b"\n"
    latencies: list[int] = []
    go = asyncio.Event()
    deadline = [float("inf")]
    pingers: list[_Pinger] = []

    def factory() -> _Pinger:
        pinger = _Pinger(message, rounds, latencies, go, loop.create_future(), deadline)
        pingers.append(pinger)
        return pinger

    opened, errors = await _open(loop, factory, host, port, connections)
    started_ns = time.perf_counter_ns()
    deadline[0] = time.monotonic() + seconds
    live = [p for p in pingers if p.transport is not None]
    if not live:  # nobody could connect: the errors say why
        return _summary([], 1, connections, size, errors)
    for pinger in live:
        pinger.send()
    done, pending = await asyncio.wait([p.done for p in live],
                                       timeout=seconds + _GRACE_SECONDS)
    finished_ns = time.perf_counter_ns()
    for pinger in live:
        if pinger.done.done() and pinger.done.result() == "lost":
            errors["connection lost"] = errors.get("connection lost", 0) + 1
        pinger.transport.close()
    if pending:
        errors["no reply in time"] = len(pending)
    await asyncio.sleep(0)  # let the transports close before the next target
    return _summary(latencies, finished_ns - started_ns, connections, size, errors)


def _summary(latencies: list[int], elapsed_ns: int, connections: int, size: int,
             errors: dict[str, int]) -> dict[str, Any]:
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3  # µs

    return {"requests": len(ordered), "seconds": elapsed_ns / 1e9,
            "rps": len(ordered) / max(elapsed_ns / 1e9, 1e-9),
            "p50 us": quantile(0.50), "p90 us": quantile(0.90), "p99 us": quantile(0.99),
            "max us": ordered[-1] / 1e3 if ordered else float("nan"),
            "sample us": [quantile(i / _QUANTILES) for i in range(_QUANTILES)],
            "connections": connections, "message bytes": size,
            "errors": sum(errors.values()), "error kinds": errors}


def check_load(connections: int, rounds: int, size: int, seconds: float) -> None:
    """Raise ValueError naming the first of a load's sizes that is out of its range."""
    check_int("connections", connections, 1, MAX_CONNECTIONS)
    check_int("rounds", rounds, 1, MAX_ROUNDS)
    check_int("size", size, 2, MAX_SIZE)
    check_float("seconds", seconds, 0.05, MAX_SECONDS)


def _check_port(port: int) -> int:
    return check_int("port", port, 1, 65535)  # a client needs the server's own port


def _check_targets(targets: list[tuple]) -> None:
    if isinstance(targets, str) or not isinstance(targets, (list, tuple)) or not targets:
        raise ValueError(f"targets must be a non-empty list of (name, host, port[, pids]), "
                         f"got {targets!r}")
    for target in targets:
        if not isinstance(target, (list, tuple)) or len(target) not in (3, 4):
            raise ValueError(f"targets must hold (name, host, port[, pids]) tuples, got "
                             f"{target!r}")
        check_loopback_host("targets' host", target[1])
        _check_port(target[2])


def load(control, targets: list[tuple], connections: int, rounds: int, size: int,
         seconds: float, warm_up: bool = False,
         apart: bool = False) -> dict[str, dict[str, Any]]:
    """Load each ``(name, host, port[, server pids])`` in turn; its figures by name (in a child).

    With the server's pids, the figures also say how much CPU the server used for the run
    (``server cpu s``) and ``requests per server cpu s``: its cost per request, whatever else
    the machine was doing. ``warm_up`` first runs a second of unrecorded load against an echo
    server in the generator's own loop (the targets' servers see none of it), so that the first
    target does not pay the generator's own warm-up. ``apart`` loads each server with it on a
    core of its own and the generator on another (`placement.cores_apart`; it needs the
    server's pids).
    """
    _check_targets(targets)
    check_load(connections, rounds, size, seconds)
    if not isinstance(apart, bool):
        raise TypeError(f"apart must be True or False, got {apart!r}")
    if warm_up:
        asyncio.run(_warm_up(connections, size))
    results = {}
    for name, host, port, *pids in targets:
        with cores_apart(pids[0]) if apart and pids and pids[0] else nullcontext():
            before = _cpu_seconds(pids[0] if pids else [])
            figures = asyncio.run(_load_one(host, port, connections, rounds, size, seconds))
            if pids:
                used = _cpu_seconds(pids[0]) - before
                figures["server cpu s"] = used
                figures["requests per server cpu s"] = \
                    figures["requests"] / used if used else 0.0
        results[name] = figures
    return results


class _Echo(asyncio.Protocol):
    """The warm-up's own echo server: whatever comes in goes straight back."""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _warm_up(connections: int, size: int) -> None:
    """Load an echo server of the generator's own, in its own loop, for `_WARM_UP_SECONDS`."""
    server = await asyncio.get_running_loop().create_server(_Echo, LOOPBACK, 0)
    try:
        port = server.sockets[0].getsockname()[1]
        await _load_one(LOOPBACK, port, connections, MAX_ROUNDS, size, _WARM_UP_SECONDS)
    finally:
        server.close()
        await server.wait_closed()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (0 for one that is gone)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


# -- idle connections ------------------------------------------------------------------------
def _open_idle(host: str, port: int, count: int, deadline: float, held: list[socket.socket],
               errors: dict[str, int]) -> None:
    """Open `count` clients, each through one round trip, in batches (plain non-blocking sockets:
    three times cheaper per connection than asyncio's transports, and nothing more is needed)."""
    import selectors

    def fail(kind: str, sock: socket.socket) -> None:
        errors[kind] = errors.get(kind, 0) + 1
        sock.close()

    with selectors.DefaultSelector() as selector:
        for first in range(0, count, _CONNECT_BATCH):
            for _ in range(min(_CONNECT_BATCH, count - first)):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                if sock.connect_ex((host, port)) not in (0, errno.EINPROGRESS):
                    fail("connect refused", sock)
                    continue
                selector.register(sock, selectors.EVENT_WRITE, "connecting")
            while selector.get_map() and time.monotonic() < deadline:
                for key, _ in selector.select(0.1):
                    sock = key.fileobj
                    if key.data == "connecting":
                        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            selector.unregister(sock)
                            fail("connect failed", sock)
                            continue
                        sock.send(b"hello\n")  # one round trip: the server has set it up
                        selector.modify(sock, selectors.EVENT_READ, "asked")
                        continue
                    selector.unregister(sock)
                    try:
                        answered = sock.recv(64)
                    except OSError:
                        answered = b""
                    if answered:
                        held.append(sock)
                    else:
                        fail("closed by server", sock)
            for key in list(selector.get_map().values()):
                selector.unregister(key.fileobj)
                fail("no answer in time", key.fileobj)


def hold_idle(control, host: str, port: int, steps: list[int], server_pid: int,
              seconds: float, nofile: int) -> dict[str, Any]:
    """Hold ``steps[-1]`` idle clients, reading the server's RSS at each step (in a child)."""
    check_loopback_host("host", host)
    _check_port(port)
    if isinstance(steps, str) or not isinstance(steps, (list, tuple)) or not steps:
        raise ValueError(f"steps must be a non-empty list of client counts, got {steps!r}")
    for step in steps:
        check_int("steps", step, 1, MAX_CONNECTIONS)
    check_int("server_pid", server_pid, 1, _MAX_PID)
    check_timeout("seconds", seconds, 0.001, _MAX_HOLD_SECONDS)
    check_int("nofile", nofile, 1, _MAX_NOFILE)
    import psutil

    raise_open_files(nofile)
    server = psutil.Process(server_pid)
    held: list[socket.socket] = []
    errors: dict[str, int] = {}
    rows = [(0, server.memory_info().rss)]
    deadline = time.monotonic() + seconds
    try:
        for target in steps:
            _open_idle(host, port, target - len(held), deadline, held, errors)
            time.sleep(0.05)  # let the server's last handlers block in recv
            rows.append((len(held), server.memory_info().rss))
    finally:
        for sock in held:
            sock.close()
    return {"rows": rows, "errors": sum(errors.values()), "error kinds": errors}


# -- bad clients -----------------------------------------------------------------------------
async def _watch_close(reader: asyncio.StreamReader, limit: float) -> float | None:
    """Seconds until the server closed this connection, or None if it never did within limit."""
    started = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(65536), limit):
            pass
    except (asyncio.TimeoutError, OSError):
        return None
    return time.monotonic() - started


async def _bad(host: str, port: int, watch: float, big: int) -> dict[str, Any]:
    spans: dict[str, list[tuple[str, str, int, int]]] = {}

    def span(lane: str, label: str, kind: str, start: int) -> None:
        spans.setdefault(lane, []).append((label, kind, start, time.perf_counter_ns()))

    async def silent() -> float | None:
        start = time.perf_counter_ns()
        reader, writer = await asyncio.open_connection(host, port)
        closed = await _watch_close(reader, watch)
        span("connects, never sends", "silent", "idle", start)
        writer.close()
        return closed

    async def half_line() -> float | None:
        start = time.perf_counter_ns()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"half a li")
        closed = await _watch_close(reader, watch)
        span("sends half a line", "no newline", "idle", start)
        writer.close()
        return closed

    async def leaves_mid_reply() -> int:
        start = time.perf_counter_ns()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the reply cannot fit
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"y" * big + b"\n")
        await writer.drain()
        got = len(await reader.read(4096))
        span("leaves mid-reply", f"read {got} B of {big + 1:,}", "io", start)
        writer.transport.abort()  # with unread data: the server's next send gets a reset
        return got

    async def good() -> dict[str, Any]:
        reader, writer = await asyncio.open_connection(host, port)
        latencies, failures = [], 0
        stop = time.monotonic() + watch
        while time.monotonic() < stop:
            start = time.perf_counter_ns()
            writer.write(b"ping\n")
            try:
                line = await asyncio.wait_for(reader.readline(), 1.0)
            except (asyncio.TimeoutError, OSError):
                line = b""
            if line != b"ping\n":
                failures += 1
            latencies.append((time.perf_counter_ns() - start) / 1e3)
            span("good client", "ping", "run", start)
            await asyncio.sleep(0.02)
        writer.close()
        return {"requests": len(latencies), "failures": failures,
                "worst us": max(latencies, default=float("nan"))}

    results = await asyncio.gather(silent(), half_line(), leaves_mid_reply(), good())
    return {"silent closed after s": results[0], "half line closed after s": results[1],
            "mid-reply read bytes": results[2], "good client": results[3], "spans": spans}


def bad_clients(control, host: str, port: int, watch: float, big: int) -> dict[str, Any]:
    """Three bad clients and a good one against one server for `watch` s (run in a child)."""
    check_loopback_host("host", host)
    _check_port(port)
    check_timeout("watch", watch, 0.001, _MAX_HOLD_SECONDS)
    check_int("big", big, 1, _MAX_BIG)
    return asyncio.run(_bad(host, port, watch, big))
