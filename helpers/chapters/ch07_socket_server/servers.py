"""One line protocol, served by four concurrency models, each on a listening socket it is given.

Every server here speaks the same protocol: the client sends lines (bytes ending in ``\\n``); the
server answers each complete line. The *handler* decides the answer: ``echo`` sends the line back,
``cpu`` computes for a while first (a CPU-bound request), ``whoami`` answers which process and
thread served it. The *model* decides how many clients are served at once, and by what::

    listener (bound by prefork.serve) ──► model ─────────────────► one _Conn per client
                                           gevent:      a greenlet each (StreamServer)
                                           threads:     a thread each (ThreadingTCPServer)
                                           asyncio:     a task each (asyncio.start_server)
                                           plain:       one client at a time (TCPServer)
                                           threading:   = threads;  forking: a process each
    a reaper (greenlet/thread/task) ─────► closes clients silent for idle_timeout s
    stop (a pipe readable, or the deadline) ► stop accepting, close every client, report _Book

`run_model` returns the book of the run as plain data: counts, each connection's span
(opened, closed, lines, outcome) and the serving pid, so the kernel can draw who served whom.
"""

from __future__ import annotations

import itertools
import os
import select
import socket
import threading
import time
from dataclasses import dataclass

from ...workloads import cpu_task

__all__ = ["HANDLERS", "MODELS", "SOCKETSERVER_MODELS", "Settings", "bare_echo", "run_model",
           "serve_bare"]

MODELS = ("gevent", "threads", "asyncio")  # the three compared under load
SOCKETSERVER_MODELS = ("plain", "threading", "forking")  # the standard library's own three
HANDLERS = ("echo", "cpu", "whoami")
# One recv reads at most this much: a whole message of the largest size the panel sends.
_RECV_BYTES = 65536
# A line longer than this is refused (the connection is closed): memory per client stays bounded.
MAX_LINE = 4 * 1024 * 1024
# Listen backlog: a burst of 10,000 connects overflows a short queue and costs 1 s SYN retries
# (socketserver's default is 5); Linux caps it at net.core.somaxconn anyway.
BACKLOG = 4096
# Spans sent back per process: 10,000 idle connections plus room (all are counted).
_MAX_SPANS = 20_000
# How often the reaper looks: a quarter of the idle timeout. A client is reclaimed at the fifth
# look that finds it silent: between 1 and 1.25 idle timeouts after its last byte.
_SWEEPS_PER_TIMEOUT = 4
# A model stops accepting, then gives open clients this long to go before it closes them.
_GRACE_SECONDS = 1.0
# The socketserver loop looks at its stop pipe at least this often.
_POLL_SECONDS = 0.05
_NEWLINE = ord("\n")
_CLOSED_BY_CLIENT = "closed by client"  # every connection's outcome until something else happens


@dataclass(frozen=True)
class Settings:
    """How a server answers: the handler, its CPU time per line, the idle timeout (None: never)."""

    handler: str = "echo"
    cpu_iterations: int = 0
    idle_timeout: float | None = 60.0
    max_clients: int | None = None  # gevent: stop accepting at this many (gunicorn's
    # --worker-connections), so a worker that wakes first cannot take every client


class _Conn:
    __slots__ = ("id", "opened_ns", "received", "seen", "idle", "lines", "outcome", "closer")

    def __init__(self, conn_id: int, closer) -> None:
        self.id, self.closer = conn_id, closer
        self.opened_ns = time.perf_counter_ns()
        self.received = self.seen = self.idle = self.lines = 0
        self.outcome = _CLOSED_BY_CLIENT


class _Book:
    """Who is connected, and what happened to everyone who was.

    Thread-safe without a lock: a dict insert or pop, a list append and ``next()`` on a counter
    are each atomic in CPython. (A lock here was a convoy: 10,000 handler threads woken at once
    by their clients leaving queued on it, and the main thread starved behind them.)
    """

    def __init__(self, model: str, settings: Settings) -> None:
        self.model, self.settings = model, settings
        self.open: dict[int, _Conn] = {}
        self.spans: list[tuple[int, int, int, int, str]] = []
        self._ids = itertools.count(1)
        self.pid = os.getpid()
        self.start_ns = time.perf_counter_ns()

    def opened(self, closer) -> _Conn:
        conn = _Conn(next(self._ids), closer)
        self.open[conn.id] = conn
        return conn

    def closed(self, conn: _Conn) -> None:
        if self.open.pop(conn.id, None) is not None:
            self.spans.append((conn.id, conn.opened_ns, time.perf_counter_ns(), conn.lines,
                               conn.outcome))

    def sweep(self) -> None:
        """Close every client that sent nothing for the idle timeout (called every interval)."""
        if self.settings.idle_timeout is None:
            return
        for conn in list(self.open.values()):
            activity = conn.received + conn.lines  # the fast path counts only lines
            if activity != conn.seen:
                conn.seen, conn.idle = activity, 0
                continue
            conn.idle += 1
            if conn.idle > _SWEEPS_PER_TIMEOUT:
                conn.outcome = "reclaimed: idle" if not activity else "reclaimed: half a line"
                _close_quietly(conn.closer)

    def close_all(self, outcome: str) -> None:
        for conn in list(self.open.values()):
            conn.outcome = outcome
            _close_quietly(conn.closer)

    def report(self) -> dict:
        spans = list(self.spans)
        still_open = list(self.open.values())
        outcomes: dict[str, int] = {}
        for span in spans:
            outcomes[span[4]] = outcomes.get(span[4], 0) + 1
        return {"model": self.model, "pid": self.pid, "accepted": len(spans) + len(still_open),
                "lines": sum(s[3] for s in spans) + sum(c.lines for c in still_open),
                "peak_open": _peak(spans, still_open), "still_open": len(still_open),
                "outcomes": outcomes, "spans": spans[:_MAX_SPANS], "start_ns": self.start_ns,
                "stop_ns": time.perf_counter_ns()}


def _peak(spans: list[tuple[int, int, int, int, str]], still_open: list[_Conn]) -> int:
    """The most clients connected at once: a sweep over every open (+1) and close (-1)."""
    edges = [(s[1], 1) for s in spans] + [(s[2], -1) for s in spans]
    edges += [(c.opened_ns, 1) for c in still_open]
    peak = now = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        now += step
        peak = max(peak, now)
    return peak


def _close_quietly(closer) -> None:
    try:
        closer()
    except OSError:
        pass


def _shutdown(sock: socket.socket):
    """A closer that wakes a thread or greenlet blocked in recv (it then reads an end of file)."""
    return lambda: sock.shutdown(socket.SHUT_RDWR)


class _Answer:
    """Turns received bytes into the reply for their complete lines; keeps the unfinished tail."""

    __slots__ = ("settings", "tail", "who")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tail = b""
        self.who = b""

    def __call__(self, data: bytes, conn: _Conn) -> bytes:
        conn.received += len(data)
        if not self.tail and data[-1] == _NEWLINE:  # whole lines, nothing to join
            lines = data
        else:
            buffer = self.tail + data
            cut = buffer.rfind(b"\n") + 1
            lines, self.tail = buffer[:cut], buffer[cut:]
            if len(self.tail) > MAX_LINE:
                raise _LineTooLong
            if not lines:
                return b""
        count = lines.count(b"\n")
        conn.lines += count
        handler = self.settings.handler
        if handler == "echo":
            return lines
        if handler == "cpu":
            for _ in range(count):
                cpu_task(self.settings.cpu_iterations)
            return lines
        who = f"served by pid {os.getpid()}, {threading.current_thread().name}\n".encode()
        return who * count


class _LineTooLong(Exception):
    pass


def _reset(conn: _Conn) -> str:
    return "reset by client" if conn.outcome == _CLOSED_BY_CLIENT else conn.outcome


# -- gevent: a greenlet per connection ------------------------------------------------------------
def _run_gevent(listener: socket.socket, book: _Book, stop_fd: int, deadline: float) -> None:
    import gevent
    from gevent.pool import Pool
    from gevent.server import StreamServer
    from gevent.socket import wait_read

    def handle(sock, _address) -> None:
        conn = book.opened(_shutdown(sock))
        answer = _Answer(book.settings)
        recv, sendall = sock.recv, sock.sendall
        echo = book.settings.handler == "echo"
        try:
            while True:
                data = recv(_RECV_BYTES)
                if not data:
                    break
                if echo and data[-1] == _NEWLINE and not answer.tail:  # whole lines: echo them
                    conn.lines += data.count(b"\n")
                    sendall(data)
                    continue
                reply = answer(data, conn)
                if reply:
                    sendall(reply)
        except _LineTooLong:
            conn.outcome = "line too long"
        except OSError:  # a reset, or the reaper's shutdown (which set the outcome first)
            conn.outcome = _reset(conn)
        finally:
            book.closed(conn)
            sock.close()

    limit = book.settings.max_clients
    server = StreamServer(listener, handle, spawn=Pool(limit) if limit else "default")
    # One accept per wake-up: with several processes on one socket, a worker that accepted a whole
    # burst of connections at once would leave the others idle.
    server.max_accept = 1
    server.start()
    reaper = gevent.spawn(_gevent_reaper, book)
    try:
        wait_read(stop_fd, timeout=max(0.0, deadline - time.monotonic()))
    except OSError:  # socket.timeout: the lifetime ended
        pass
    server.close()  # stop accepting; the clients still connected are told to go
    book.close_all("server stopped")
    server.stop(timeout=_GRACE_SECONDS)
    reaper.kill()


def _gevent_reaper(book: _Book) -> None:
    import gevent

    while book.settings.idle_timeout is not None:
        gevent.sleep(book.settings.idle_timeout / _SWEEPS_PER_TIMEOUT)
        book.sweep()


# -- socketserver: plain, a thread per connection, a process per connection -----------------------
def _run_socketserver(listener: socket.socket, kind: str, book: _Book, stop_fd: int,
                      deadline: float) -> None:
    import socketserver

    base = {"plain": socketserver.TCPServer, "threading": socketserver.ThreadingTCPServer,
            "threads": socketserver.ThreadingTCPServer,
            "forking": socketserver.ForkingTCPServer}[kind]
    threads: list[threading.Thread] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock = self.request
            conn = book.opened(_shutdown(sock))
            threads.append(threading.current_thread())
            answer = _Answer(book.settings)
            recv, sendall = sock.recv, sock.sendall
            echo = book.settings.handler == "echo"
            try:
                while True:
                    data = recv(_RECV_BYTES)
                    if not data:
                        break
                    if echo and data[-1] == _NEWLINE and not answer.tail:  # whole lines
                        conn.lines += data.count(b"\n")
                        sendall(data)
                        continue
                    reply = answer(data, conn)
                    if reply:
                        sendall(reply)
            except _LineTooLong:
                conn.outcome = "line too long"
            except OSError:  # a reset, or the reaper's shutdown (which set the outcome first)
                conn.outcome = _reset(conn)
            finally:
                book.closed(conn)

    class Server(base):
        daemon_threads = True  # a stuck handler never keeps the process alive; joined below
        block_on_close = False  # the bounded joins below replace server_close's unbounded one

    server = Server(listener.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    reaper = _thread_reaper(book) if kind != "forking" else None
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([listener, stop_fd], [], [], _POLL_SECONDS)
            if stop_fd in readable:
                break
            if readable:  # a client is waiting: accept it (another worker may have won it)
                server.handle_request()  # plain: serves the whole client before it returns
            if kind == "forking":
                server.collect_children()
    finally:
        if reaper is not None:
            reaper.set()
        book.close_all("server stopped")
        listener.close()
        limit = time.monotonic() + _GRACE_SECONDS
        for thread in list(threads):
            if thread is not threading.current_thread():
                thread.join(max(0.0, limit - time.monotonic()))


def _thread_reaper(book: _Book) -> threading.Event:
    stop = threading.Event()

    def sweep() -> None:
        while book.settings.idle_timeout is not None and not stop.wait(
                book.settings.idle_timeout / _SWEEPS_PER_TIMEOUT):
            book.sweep()

    threading.Thread(target=sweep, name="reaper", daemon=True).start()
    return stop


# -- asyncio: a task per connection ----------------------------------------------------------
def _run_asyncio(listener: socket.socket, book: _Book, stop_fd: int, deadline: float) -> None:
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = book.opened(writer.transport.abort)
        answer = _Answer(book.settings)
        read, write, drain = reader.read, writer.write, writer.drain
        echo = book.settings.handler == "echo"
        try:
            while True:
                data = await read(_RECV_BYTES)
                if not data:
                    break
                if echo and data[-1] == _NEWLINE and not answer.tail:  # whole lines: echo them
                    conn.lines += data.count(b"\n")
                    write(data)
                    await drain()
                    continue
                reply = answer(data, conn)
                if reply:
                    write(reply)
                    await drain()
        except _LineTooLong:
            conn.outcome = "line too long"
        except OSError:  # a reset, or the reaper's shutdown (which set the outcome first)
            conn.outcome = _reset(conn)
        finally:
            book.closed(conn)
            writer.transport.abort()

    async def reaper() -> None:
        while book.settings.idle_timeout is not None:
            await asyncio.sleep(book.settings.idle_timeout / _SWEEPS_PER_TIMEOUT)
            book.sweep()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(stop_fd, stop.set)
        server = await asyncio.start_server(handle, sock=listener, backlog=BACKLOG)
        sweeper = asyncio.create_task(reaper())
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pass
        loop.remove_reader(stop_fd)
        server.close()
        book.close_all("server stopped")
        sweeper.cancel()
        await asyncio.sleep(0)  # let the handlers see their closed transports and finish
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=_GRACE_SECONDS)

    asyncio.run(main())


def run_model(listener: socket.socket, model: str, settings: Settings, stop_fd: int,
              deadline: float) -> dict:
    """Serve on `listener` with `model` until `stop_fd` is readable or `deadline`: its book."""
    book = _Book(model, settings)
    # Non-blocking: with several processes on one listener, all wake for each client and one wins;
    # the others get EWOULDBLOCK from accept and wait again instead of blocking in it.
    listener.setblocking(False)
    if model == "gevent":
        _run_gevent(listener, book, stop_fd, deadline)
    elif model == "asyncio":
        _run_asyncio(listener, book, stop_fd, deadline)
    elif model in ("threads", *SOCKETSERVER_MODELS):
        _run_socketserver(listener, model, book, stop_fd, deadline)
    else:
        raise ValueError(f"model must be one of {MODELS + SOCKETSERVER_MODELS}, got {model!r}")
    return book.report()


# -- the bare server: the ten-line gevent echo, the yardstick ------------------------------
def bare_echo(sock, address) -> None:
    """Echo everything back until the client closes: the whole handler of a gevent echo server."""
    while True:
        data = sock.recv(65536)  # whatever has arrived, up to 64 KiB
        if not data:
            break
        sock.sendall(data)
    sock.close()


def serve_bare(control, host: str = "127.0.0.1", port: int = 0) -> dict:
    """A bare ``StreamServer((host, port), bare_echo)``, started and stopped from the kernel."""
    from gevent.server import StreamServer
    from gevent.socket import wait_read

    server = StreamServer((host, port), bare_echo, backlog=BACKLOG)
    server.start()
    control.ready(host=host, port=server.address[1], pids=[os.getpid()])
    try:
        wait_read(control.stop_fd, timeout=control.remaining())
    except OSError:  # the lifetime ended
        pass
    server.stop(timeout=_GRACE_SECONDS)
    return {"workers": []}
