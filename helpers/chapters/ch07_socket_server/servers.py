"""One line protocol under every concurrency model of the chapter, on a listening socket given.

Every server here speaks the same protocol: the client sends lines (bytes ending in ``\\n``); the
server answers each complete line. The *handler* decides the answer: ``echo`` sends the line back,
``cpu`` computes for a while first (a CPU-bound request), ``blocking`` calls ``time.sleep`` first
(a blocking library call: cooperative only where gevent patched it), ``whoami`` answers which
process and thread served it. The *model* decides how many clients are served at once, and by what::

    listener (bound by prefork.serve) ──► model ─────────────────► one Conn per client
                                           gevent:      a greenlet each (StreamServer)
                                           threads:     a thread each (ThreadingTCPServer)
                                           asyncio:     a task each (asyncio.start_server)
                                           plain:       one client at a time (TCPServer)
                                           threading:   = threads;  forking: a process each
    a reaper (greenlet/thread/task) ─────► closes clients silent for idle_timeout s
    stop (a pipe readable, or the deadline) ► stop accepting, close every client, report Book

`run_model` returns the book of the run (`books.Book.report`) as plain data: counts, each
connection's span (opened, closed, lines, outcome) and the serving pid, so the kernel can draw
who served whom.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from dataclasses import dataclass

from ...course import check_choice, check_int
from ...workloads import cpu_task
from .books import CLOSED_BY_CLIENT, SWEEPS_PER_TIMEOUT, Book, Conn
from .models import MODELS, SOCKETSERVER_MODELS

__all__ = ["HANDLERS", "MODELS", "SOCKETSERVER_MODELS", "LineTooLong", "Lines", "Settings",
           "handle_connection", "handle_connection_async", "reply_to", "run_model",
           "serve_asyncio", "serve_gevent", "serve_socketserver"]

HANDLERS = ("echo", "cpu", "blocking", "whoami")
# One recv reads at most this much: a whole message of the largest size the panel sends.
_RECV_BYTES = 65536
# A line longer than this is refused (the connection is closed): memory per client stays bounded.
MAX_LINE = 4 * 1024 * 1024
# Listen backlog: a burst of 10,000 connects overflows a short queue and costs 1 s SYN retries
# (socketserver's default is 5); Linux caps it at net.core.somaxconn anyway.
BACKLOG = 4096
# At a stop every client is closed; the model then waits this long for their handlers to end.
_GRACE_SECONDS = 1.0
# The socketserver loop looks at its stop pipe at least this often.
_POLL_SECONDS = 0.05
_NEWLINE = ord("\n")
# A file descriptor is a C int.
_MAX_FD = 2**31 - 1


@dataclass(frozen=True)
class Settings:
    """How a server answers: the handler, its work per line, the idle timeout (None: never)."""

    handler: str = "echo"
    cpu_iterations: int = 0
    blocking_seconds: float = 0.0  # the "blocking" handler's time.sleep per line
    idle_timeout: float | None = 60.0
    max_clients: int | None = None  # gevent: stop accepting at this many (gunicorn's
    # --worker-connections), so a worker that wakes first cannot take every client


def _shutdown(sock: socket.socket):
    """A closer that wakes a thread or greenlet blocked in recv (it then reads an end of file)."""
    return lambda: sock.shutdown(socket.SHUT_RDWR)


class Lines:
    """Cuts a client's bytes into complete lines; an unfinished tail waits for the rest."""

    __slots__ = ("tail",)

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, data: bytes, conn: Conn) -> tuple[bytes, int]:
        """(the complete lines in `data` and before it, how many): counted in `conn`."""
        conn.received += len(data)
        if not self.tail and data[-1] == _NEWLINE:  # whole lines, nothing to join
            lines = data
        else:
            buffer = self.tail + data
            cut = buffer.rfind(b"\n") + 1
            lines, self.tail = buffer[:cut], buffer[cut:]
            if len(self.tail) > MAX_LINE:
                raise LineTooLong
        count = lines.count(b"\n")
        conn.lines += count
        return lines, count


class LineTooLong(Exception):
    """A client sent more than `MAX_LINE` bytes without a newline."""


def reply_to(lines: bytes, settings: Settings) -> bytes:
    """The reply to some complete lines: what the server's handler setting asks for."""
    count = lines.count(b"\n")
    if settings.handler == "cpu":  # a CPU-bound request: compute, then echo
        for _ in range(count):
            cpu_task(settings.cpu_iterations)
    elif settings.handler == "blocking":  # a library call that blocks, like a database driver's
        for _ in range(count):
            time.sleep(settings.blocking_seconds)  # looked up now: gevent's if patched
    elif settings.handler == "whoami":
        who = f"served by pid {os.getpid()}, {threading.current_thread().name}\n"
        return who.encode() * count
    return lines


def _reset(conn: Conn) -> str:
    return "reset by client" if conn.outcome == CLOSED_BY_CLIENT else conn.outcome


def handle_connection(sock: socket.socket, book: Book) -> None:
    """Serve one client until it leaves: run by a greenlet (gevent) or by a thread (threads).

    The same code serves both models: with gevent, ``sock`` is a gevent socket whose ``recv``
    waits in the hub; with threads, a standard socket whose ``recv`` waits in the kernel.
    """
    conn = book.opened(_shutdown(sock))  # the reaper may close it through this
    split, settings = Lines().feed, book.settings
    echo = settings.handler == "echo"
    try:
        while data := sock.recv(_RECV_BYTES):  # b"": the client closed its side
            lines, count = split(data, conn)
            if count:
                sock.sendall(lines if echo else reply_to(lines, settings))
    except LineTooLong:
        conn.outcome = "line too long"
    except OSError:  # a reset, or the reaper's shutdown (which set the outcome first)
        conn.outcome = _reset(conn)
    finally:
        book.closed(conn)


async def handle_connection_async(reader, writer, book: Book) -> None:
    """The same for asyncio: one task per client, ``await`` where the others block."""
    conn = book.opened(writer.transport.abort)
    split, settings = Lines().feed, book.settings
    echo = settings.handler == "echo"
    try:
        while data := await reader.read(_RECV_BYTES):
            lines, count = split(data, conn)
            if count:
                writer.write(lines if echo else reply_to(lines, settings))
                await writer.drain()  # wait while the client's socket buffer is full
    except LineTooLong:
        conn.outcome = "line too long"
    except OSError:  # a reset, or the reaper's shutdown (which set the outcome first)
        conn.outcome = _reset(conn)
    finally:
        book.closed(conn)
        writer.transport.abort()


# -- gevent: a greenlet per connection ------------------------------------------------------------
def serve_gevent(listener: socket.socket, book: Book, stop_fd: int, deadline: float) -> None:
    """gevent's StreamServer on `listener`: a greenlet per client, until `stop_fd` is readable."""
    check_int("stop_fd", stop_fd, 0, _MAX_FD)
    import gevent
    from gevent.pool import Pool
    from gevent.server import StreamServer
    from gevent.socket import wait_read

    limit = book.settings.max_clients  # pre-fork: this worker's share of the clients
    server = StreamServer(listener, lambda sock, _address: handle_connection(sock, book),
                          spawn=Pool(limit) if limit else "default")
    # One accept per wake-up: with several processes on one socket, a worker that accepted a whole
    # burst of connections at once would leave the others idle.
    server.max_accept = 1
    server.start()  # accepts in the hub from now on; each handler closes its socket when done
    reaper = gevent.spawn(_gevent_reaper, book)
    try:
        wait_read(stop_fd, timeout=max(0.0, deadline - time.monotonic()))
    except OSError:  # socket.timeout: the lifetime ended
        pass
    server.close()  # stop accepting; the clients still connected are told to go
    book.close_all("server stopped")
    server.stop(timeout=_GRACE_SECONDS)
    reaper.kill()


def _gevent_reaper(book: Book) -> None:
    import gevent

    while book.settings.idle_timeout is not None:
        gevent.sleep(book.settings.idle_timeout / SWEEPS_PER_TIMEOUT)
        book.sweep()


# -- socketserver: plain, a thread per connection, a process per connection -----------------------
def serve_socketserver(listener: socket.socket, kind: str, book: Book, stop_fd: int,
                       deadline: float) -> None:
    """socketserver's TCPServer, ThreadingTCPServer or ForkingTCPServer on `listener`."""
    check_choice("kind", kind, ("threads", *SOCKETSERVER_MODELS))
    check_int("stop_fd", stop_fd, 0, _MAX_FD)
    import socketserver

    base = {"plain": socketserver.TCPServer, "threading": socketserver.ThreadingTCPServer,
            "threads": socketserver.ThreadingTCPServer,
            "forking": socketserver.ForkingTCPServer}[kind]
    threads: list[threading.Thread] = []  # the handler threads, joined (bounded) at the end

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:  # one instance per connection; self.request is its socket
            threads.append(threading.current_thread())
            handle_connection(self.request, book)

    class Server(base):
        daemon_threads = True  # a stuck handler never keeps the process alive
        block_on_close = False  # _wind_down's bounded joins replace server_close's unbounded one

    server = Server(listener.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener  # the listener bound once (by prefork.serve), maybe shared
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
        _wind_down(listener, book, reaper, threads)


def _wind_down(listener: socket.socket, book: Book, reaper: threading.Event | None,
               threads: list[threading.Thread]) -> None:
    """Close every client and the listener; give their handler threads a bounded time to end."""
    if reaper is not None:
        reaper.set()
    book.close_all("server stopped")
    listener.close()
    limit = time.monotonic() + _GRACE_SECONDS
    for thread in list(threads):
        if thread is not threading.current_thread():
            thread.join(max(0.0, limit - time.monotonic()))


def _thread_reaper(book: Book) -> threading.Event:
    stop = threading.Event()

    def sweep() -> None:
        while book.settings.idle_timeout is not None and not stop.wait(
                book.settings.idle_timeout / SWEEPS_PER_TIMEOUT):
            book.sweep()

    threading.Thread(target=sweep, name="reaper", daemon=True).start()
    return stop


# -- asyncio: a task per connection ----------------------------------------------------------
def serve_asyncio(listener: socket.socket, book: Book, stop_fd: int, deadline: float) -> None:
    """asyncio.start_server on `listener`: a task per client, until `stop_fd` is readable."""
    check_int("stop_fd", stop_fd, 0, _MAX_FD)
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle_connection_async(reader, writer, book)

    async def reaper() -> None:
        while book.settings.idle_timeout is not None:
            await asyncio.sleep(book.settings.idle_timeout / SWEEPS_PER_TIMEOUT)
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
    check_choice("model", model, MODELS + SOCKETSERVER_MODELS)
    check_int("stop_fd", stop_fd, 0, _MAX_FD)
    book = Book(model, settings)
    # Non-blocking: with several processes on one listener, all wake for each client and one wins;
    # the others get EWOULDBLOCK from accept and wait again instead of blocking in it.
    listener.setblocking(False)
    if model == "gevent":
        serve_gevent(listener, book, stop_fd, deadline)
    elif model == "asyncio":
        serve_asyncio(listener, book, stop_fd, deadline)
    else:  # threads, and socketserver's "plain", "threading", "forking"
        serve_socketserver(listener, model, book, stop_fd, deadline)
    return book.report()
