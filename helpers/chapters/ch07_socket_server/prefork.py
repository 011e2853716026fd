"""Start a server beside the kernel: one process, or N worker processes sharing one socket.

Pre-fork is how gunicorn runs gevent on every core: a master binds the listening socket once, then
starts N workers that each inherit it and accept from it; the kernel hands every new connection
to one of the processes waiting on it. Each worker runs the whole single-process server::

    kernel                       server child (the master)              N workers (N > 1)
    ------                       -------------------------              -----------------
    start_server(model, port,    listener = bind(host, port)  ────────► run_model(listener, ...)
      workers) ────────────────►   clear error if the port is busy        accept, serve, count
    handle.info["port"] ◄─ready─ wait until every worker is serving  ◄── "ready"
    handle.stop() ─────────────► "stop" down each worker's pipe  ──────► stop, close clients
    handle.value  ◄── result ─── {"workers": [book, ...]}          ◄──── book (spans, counts)

With ``workers=1`` the master serves itself; a one-process gevent server is monkey-patched first
(StreamServer needs no patching, but a handler calling a blocking library would freeze every
client without it). Pre-fork workers use gevent's own sockets, unpatched. The master is a fresh
process the kernel started, with no threads but its stop watcher, so forking it is safe (a
kernel is never forked).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from typing import Any

from ...course import (
    LOOPBACK,
    MAX_TIMEOUT_SECONDS,
    check_choice,
    check_float,
    check_int,
    check_loopback_host,
    check_start_method,
    mp_context,
    usable_cores,
)
from ...workloads import iterations_for
from . import handle as _handle
from .limits import raise_open_files
from .servers import BACKLOG, HANDLERS, MODELS, SOCKETSERVER_MODELS, Settings, run_model

__all__ = ["DEFAULT_HOST", "MAX_WORKERS", "open_listener", "serve", "serve_prefork", "start_server",
           "summarize"]

DEFAULT_HOST = LOOPBACK  # nothing in the course listens beyond this machine
# Workers beyond a few per core only compete for the same cores; 16 bounds a typo.
MAX_WORKERS = 16
# A worker that is not serving this long after it started has failed (spawn start-up on a loaded
# 2-core machine takes well under a second).
_READY_SECONDS = 20.0
# Open files a server child may be asked to allow: five times the load generator's connections.
_MAX_HINT = 100_000
# After "stop" a worker reports within this long; then it is terminated.
_STOP_SECONDS = 5.0


def open_listener(host: str = DEFAULT_HOST, port: int = 0) -> socket.socket:
    """A listening TCP socket on (host, port); a busy port is an OSError that says what to do.

    ``host`` is a loopback address (see `check_loopback_host`): never every interface.
    """
    host = check_loopback_host("host", host)
    port = check_int("port", port, 0, 65535)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # "::1"
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a just-stopped server's port
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(errno.EADDRINUSE,
                          f"port {port} on {host} is already in use (another server, or one "
                          "not stopped yet): stop it, choose another port, or use port 0 for "
                          "any free one") from None
        raise
    sock.listen(BACKLOG)
    return sock


def serve(control, model: str = "gevent", host: str = DEFAULT_HOST, port: int = 0,
          workers: int = 1, settings: Settings | None = None, start_method: str | None = None,
          raise_nofile: int = 0) -> dict[str, Any]:
    """The server child's body (run by `start_server`): bind, serve until stopped, report."""
    control = _handle.check_control(control)
    check_choice("model", model, MODELS + SOCKETSERVER_MODELS)
    host = check_loopback_host("host", host)
    port = check_int("port", port, 0, 65535)
    workers = check_int("workers", workers, 1, MAX_WORKERS)
    if start_method is not None:
        check_start_method(start_method)
    check_int("raise_nofile", raise_nofile, 0, _MAX_HINT)
    settings = settings or Settings()
    if raise_nofile:
        raise_open_files(raise_nofile)
    listener = open_listener(host, port)
    try:  # closed here whatever happens; closing it again after a worker or run_model did is fine
        address = listener.getsockname()
        if workers == 1:
            import os

            control.ready(host=address[0], port=address[1], pids=[os.getpid()])
            return {"workers": [run_model(listener, model, settings, control.stop_fd,
                                          control.deadline)]}
        return serve_prefork(control, listener, model, settings, workers, start_method)
    finally:
        listener.close()


def serve_prefork(control, listener: socket.socket, model: str, settings: Settings, workers: int,
            start_method: str | None = None) -> dict[str, Any]:
    """Pre-fork: `workers` processes serve on one listening socket, bound once, here."""
    check_choice("model", model, MODELS + SOCKETSERVER_MODELS)
    check_int("workers", workers, 1, MAX_WORKERS)
    host, port = listener.getsockname()
    ctx = mp_context(start_method)
    procs, stops, results = [], [], []
    try:
        for number in range(1, workers + 1):
            stop_r, stop_w = ctx.Pipe(duplex=False)  # master -> worker: "stop"
            result_r, result_w = ctx.Pipe(duplex=False)  # worker -> master: ready, its book
            proc = ctx.Process(target=worker, name=f"worker {number}", daemon=True,
                               args=(listener, model, settings, stop_r, result_w,
                                     control.remaining()))
            proc.start()  # the worker gets the listening socket (inherited, or passed)
            stop_r.close()
            result_w.close()
            procs.append(proc)
            stops.append(stop_w)
            results.append(result_r)
        listener.close()  # the workers hold it now
        pids = [_expect(r, "ready", _READY_SECONDS)[1] for r in results]
        control.ready(host=host, port=port, pids=pids)
        control.wait_stop()
        for stop_w in stops:
            try:
                stop_w.send("stop")
            except OSError:  # a worker that died has closed its end
                pass
        books = []
        for result_r in results:
            try:
                books.append(_expect(result_r, "book", _STOP_SECONDS)[1])
            except (TimeoutError, EOFError, OSError):
                pass  # reported as a missing worker: fewer books than workers
        return {"workers": books}
    finally:
        for proc in procs:
            proc.join(_STOP_SECONDS)
            if proc.is_alive():
                proc.kill()
                proc.join(_STOP_SECONDS)


def _expect(conn, tag: str, timeout: float):
    if not conn.poll(timeout):
        raise TimeoutError(f"a worker sent no {tag!r} within {timeout:g} s")
    message = conn.recv()
    if message[0] == "error":
        raise message[1]
    return message


def worker(listener, model: str, settings: Settings, stop_r, result_w, lifetime: float) -> None:
    """One pre-fork worker: serve on the inherited listener until the master says stop."""
    import os

    deadline = time.monotonic() + lifetime
    try:
        if model == "gevent":
            import gevent

            gevent.reinit()  # a forked child must renew the event loop it may have inherited
        result_w.send(("ready", os.getpid()))
        result_w.send(("book", run_model(listener, model, settings, stop_r.fileno(), deadline)))
    except Exception as exc:  # noqa: BLE001 - the master re-raises it
        result_w.send(("error", exc))


def start_server(model: str = "gevent", port: int = 0, *, host: str = DEFAULT_HOST,
                 workers: int = 1, handler: str = "echo", cpu_ms: float = 1.0,
                 idle_timeout: float | None = 60.0, lifetime: float = 600.0,
                 start_method: str | None = None, connections_hint: int = 0,
                 worker_connections: int | None = None, blocking_ms: float = 10.0,
                 patch: bool | None = None) -> _handle.ServerHandle:
    """Start a server child; return its handle (``.info["port"]``, ``.stop()`` -> its books).

    ``model``: gevent, threads, asyncio, or socketserver's plain, threading, forking.
    ``port=0`` takes any free port. ``workers`` > 1 is pre-fork (one listening socket shared).
    ``handler``: echo, cpu (``cpu_ms`` of computing per line, then echo), blocking
    (``time.sleep`` of ``blocking_ms`` per line, then echo), whoami.
    ``idle_timeout`` (s, None: never) reclaims silent clients. ``lifetime`` bounds the server.
    ``connections_hint`` raises the child's open-file limit for that many clients.
    ``worker_connections`` (gevent) caps the clients of each process, as gunicorn's option does.
    ``patch`` (default: for a one-process gevent server) monkey-patches the child first.
    """
    check_choice("model", model, MODELS + SOCKETSERVER_MODELS)
    port = check_int("port", port, 0, 65535)
    host = check_loopback_host("host", host)
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"host must be an IPv4 loopback address such as {DEFAULT_HOST!r}, "
                         f"got {host!r}") from None
    workers = check_int("workers", workers, 1, MAX_WORKERS)
    check_choice("handler", handler, HANDLERS)
    cpu_ms = check_float("cpu_ms", cpu_ms, 0.0, 100.0)
    blocking_ms = check_float("blocking_ms", blocking_ms, 0.0, 1000.0)
    if idle_timeout is not None:
        idle_timeout = check_float("idle_timeout", idle_timeout, 0.1, MAX_TIMEOUT_SECONDS)
    check_int("connections_hint", connections_hint, 0, _MAX_HINT)
    if worker_connections is not None:
        check_int("worker_connections", worker_connections, 1, 100_000)
    if start_method is not None:
        mp_context(start_method)  # validates the name against this OS
    if model == "forking" and workers > 1:
        raise ValueError("workers must be 1 for the forking model (it forks per connection)")
    if port:  # a busy port is told here, in the reader's own cell, before any child starts
        open_listener(host, port).close()
    if patch is None:
        patch = model == "gevent" and workers == 1
    settings = Settings(handler, iterations_for(cpu_ms / 1000) if handler == "cpu" else 0,
                        blocking_ms / 1000, idle_timeout, worker_connections)
    return _handle.start(serve, model, host, port, workers, settings, start_method,
                         connections_hint, patch=patch, lifetime=lifetime)


def summarize(books: dict[str, Any]) -> dict[str, Any]:
    """Totals over a server's worker books: accepted, lines, outcomes, connections per pid."""
    workers = books["workers"]
    outcomes: dict[str, int] = {}
    for book in workers:
        for outcome, count in book["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    return {"workers": len(workers),
            "accepted": sum(b["accepted"] for b in workers),
            "lines": sum(b["lines"] for b in workers),
            "outcomes": outcomes,
            "connections per pid": {b["pid"]: b["accepted"] for b in workers},
            "cores": usable_cores()}
