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

__all__ = ["HANDLERS", "MODELS", "SOCKETSERVER_MODELS", "Settings", "run_model"]

MODELS = ("gevent", "threads", "asyncio")  # the three compared under load
SOCKETSERVER_MODELS = ("plain", "threading", "forking")  # the standard library's own three
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


class _Answer:
    """Turns received bytes into the reply for their complete lines; keeps the unfinished tail."""

    __slots__ = ("settings", "tail", "who")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tail = b""
        self.who = b""

    def __call__(self, data: bytes, conn: Conn) -> bytes:
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
        if handler == "blocking":  # a library call that blocks, like a database driver's
            for _ in range(count):
                time.sleep(self.settings.blocking_seconds)  # looked up now: patched if patched
            return lines
        who = f"served by pid {os.getpid()}, {threading.current_thread().name}\n".encode()
        return who * count


class _LineTooLong(Exception):
    pass


def _reset(conn: Conn) -> str:
    return "reset by client" if conn.outcome == CLOSED_BY_CLIENT else conn.outcome


# -- gevent: a greenlet per connection ------------------------------------------------------------
def _run_gevent(listener: socket.socket, book: Book, stop_fd: int, deadline: float) -> None:
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


def _gevent_reaper(book: Book) -> None:
    import gevent

    while book.settings.idle_timeout is not None:
        gevent.sleep(book.settings.idle_timeout / SWEEPS_PER_TIMEOUT)
        book.sweep()


# -- socketserver: plain, a thread per connection, a process per connection -----------------------
def _run_socketserver(listener: socket.socket, kind: str, book: Book, stop_fd: int,
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


def _thread_reaper(book: Book) -> threading.Event:
    stop = threading.Event()

    def sweep() -> None:
        while book.settings.idle_timeout is not None and not stop.wait(
                book.settings.idle_timeout / SWEEPS_PER_TIMEOUT):
            book.sweep()

    threading.Thread(target=sweep, name="reaper", daemon=True).start()
    return stop


# -- asyncio: a task per connection ----------------------------------------------------------
def _run_asyncio(listener: socket.socket, book: Book, stop_fd: int, deadline: float) -> None:
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
        _run_gevent(listener, book, stop_fd, deadline)
    elif model == "asyncio":
        _run_asyncio(listener, book, stop_fd, deadline)
    else:  # threads, and socketserver's "plain", "threading", "forking"
        _run_socketserver(listener, model, book, stop_fd, deadline)
    return book.report()
