"""A gevent chat server: every line a client sends goes to every other client.

One greenlet reads each client; one more writes to it, from a bounded outbox, so a client that
stops reading fills only its own outbox (and is dropped) instead of blocking everyone's
broadcast. What the server does with a line is up to three hooks, from a *handler module* that a
reader can write (exercise 07.1 adds ``/nick``)::

    client socket ─► reader greenlet ─► on_line(chat, client, line) ─► chat.broadcast(text, ...)
                                                                      chat.send(client, text)
                     writer greenlet ◄─ client.outbox (bounded) ◄─────┘
    on_join(chat, client) when it connects; on_leave(chat, client) when it goes

A handler module defines any of the three; the others come from this module. Clients are named
``guest1``, ``guest2``, ... in the order they connect. `serve_chat` runs in a child beside the
kernel (`start_chat`) and returns what happened as data when stopped; `ChatClient` is a small
blocking client with timeouts, for cells and checks.
"""

from __future__ import annotations

import importlib.util
import socket
import time
from pathlib import Path
from typing import Any

from ...course import MAX_TIMEOUT_SECONDS, check_int, check_loopback_host, check_timeout
from . import handle as _handle
from .prefork import DEFAULT_HOST, open_listener

__all__ = ["Chat", "ChatClient", "Client", "on_join", "on_leave", "on_line", "serve_chat",
           "serve_client", "start_chat", "write_outbox"]

# Lines waiting for one slow client; past this it is dropped, so it cannot hold the room up.
_OUTBOX_LINES = 1_000
# A chat line longer than this is cut: nobody types 4 KiB on one line.
_MAX_LINE = 4096
# The transcript sent back keeps this many events: enough for any demo, bounded for a long run.
_TRANSCRIPT = 10_000
_HOOKS = ("on_join", "on_line", "on_leave")


class Client:
    """One connected client: its name, address and outbox (a bounded gevent queue)."""

    def __init__(self, name: str, address: tuple[str, int], outbox) -> None:
        if not (isinstance(address, tuple) and len(address) == 2):
            raise TypeError(f"address must be a (host, port) pair, got {address!r}")
        self.name, self.address, self.outbox = name, address, outbox

    def __repr__(self) -> str:
        return f"<Client {self.name} {self.address[0]}:{self.address[1]}>"


class Chat:
    """The room: who is in it, and how to reach them. Handlers get it as their first argument."""

    def __init__(self, hooks: dict[str, Any] | None = None) -> None:
        self.clients: list[Client] = []
        self.transcript: list[tuple[int, str, str, str]] = []
        self.errors: list[str] = []
        self.hooks = hooks or {name: globals()[name] for name in _HOOKS}
        self._guests = 0

    def names(self) -> list[str]:
        return [c.name for c in self.clients]

    def send(self, client: Client, text: str) -> None:
        """Queue one line for `client` (dropping the client if its outbox is full)."""
        from gevent.queue import Full

        try:
            client.outbox.put_nowait(text.replace("\n", " ")[:_MAX_LINE] + "\n")
        except Full:
            client.outbox = None  # its writer sees this and closes the connection

    def broadcast(self, text: str, exclude: Client | None = None) -> None:
        """Send `text` to every client except `exclude`."""
        for client in list(self.clients):
            if client is not exclude and client.outbox is not None:
                self.send(client, text)

    def note(self, event: str, name: str, text: str = "") -> None:
        if len(self.transcript) < _TRANSCRIPT:
            self.transcript.append((time.perf_counter_ns(), event, name, text))

    def call(self, hook: str, *args: Any) -> None:
        """Run a hook (on_join, on_line, on_leave); a bug in it drops its line, never the server."""
        try:
            self.hooks[hook](self, *args)
        except Exception as exc:  # noqa: BLE001 - reported back as data
            self.errors.append(f"{hook}: {exc!r}")

    def new_name(self) -> str:
        self._guests += 1
        return f"guest{self._guests}"


# -- the default handlers -------------------------------------------------------------------------
def on_join(chat: Chat, client: Client) -> None:
    chat.send(client, f"* welcome, {client.name}; {len(chat.clients) - 1} other(s) here")
    chat.broadcast(f"* {client.name} joined", exclude=client)


def on_line(chat: Chat, client: Client, line: str) -> None:
    chat.broadcast(f"{client.name}: {line}", exclude=client)


def on_leave(chat: Chat, client: Client) -> None:
    chat.broadcast(f"* {client.name} left", exclude=client)


def _load_hooks(handler_path: str | None) -> dict[str, Any]:
    hooks = {name: globals()[name] for name in _HOOKS}
    if handler_path is None:
        return hooks
    spec = importlib.util.spec_from_file_location("chat_handler", handler_path)
    if spec is None or spec.loader is None:
        raise ValueError(f"handler must be a Python file, got {handler_path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in _HOOKS:
        if callable(getattr(module, name, None)):
            hooks[name] = getattr(module, name)
    return hooks


def serve_client(chat: Chat, sock, address) -> None:
    """One client's greenlet: join, pass each line it sends to on_line, leave."""
    import gevent
    from gevent.queue import Queue

    client = Client(chat.new_name(), address, Queue(_OUTBOX_LINES))
    chat.clients.append(client)
    chat.note("join", client.name)
    sending = gevent.spawn(write_outbox, sock, client)  # one more greenlet writes to it
    chat.call("on_join", client)
    try:
        for raw in sock.makefile("rb"):  # one line at a time; waits in the hub, not the thread
            line = raw[:_MAX_LINE].decode("utf-8", "replace").rstrip("\r\n")
            chat.note("line", client.name, line)
            chat.call("on_line", client, line)
            if client.outbox is None or sending.dead:  # dropped: too slow, or gone
                break
    except OSError:
        pass
    finally:
        chat.clients.remove(client)
        chat.note("leave", client.name)
        chat.call("on_leave", client)
        if client.outbox is not None:
            client.outbox.put(None)  # tells its writer to finish
        sending.join(timeout=1.0)
        sending.kill()


def write_outbox(sock, client: Client) -> None:
    """The writer greenlet: send what arrives in the client's outbox, in order."""
    try:
        while client.outbox is not None:
            text = client.outbox.get()
            if text is None:
                break
            sock.sendall(text.encode("utf-8", "replace"))
        sock.shutdown(socket.SHUT_RDWR)  # its reader greenlet sees the end and cleans up
    except OSError:  # the client went away first
        pass


def serve_chat(control, host: str, port: int, handler_path: str | None) -> dict[str, Any]:
    """The chat server's child body: serve until stopped, return the transcript and errors."""
    control = _handle.check_control(control)
    host = check_loopback_host("host", host)
    port = check_int("port", port, 0, 65535)
    from gevent.pool import Pool
    from gevent.server import StreamServer
    from gevent.socket import wait_read

    chat = Chat(_load_hooks(handler_path))
    listener = open_listener(host, port)
    try:  # whatever goes wrong once it listens (an interrupt, a failed report), the socket closes
        listener.setblocking(False)
        # In a pool, so that stopping waits (a second at most) for the clients leaving just then.
        server = StreamServer(listener, lambda sock, address: serve_client(chat, sock, address),
                              spawn=Pool())
        server.start()
        try:
            control.ready(host=listener.getsockname()[0], port=listener.getsockname()[1])
            try:
                wait_read(control.stop_fd, timeout=control.remaining())
            except OSError:  # the lifetime ended
                pass
        finally:
            server.stop(timeout=1.0)
    finally:
        listener.close()
    return {"transcript": chat.transcript, "errors": chat.errors}


def start_chat(port: int = 0, *, host: str = DEFAULT_HOST, handler: str | Path | None = None,
               lifetime: float = 600.0) -> _handle.ServerHandle:
    """Start the chat server in a child; ``handler`` is a file defining on_line/on_join/on_leave."""
    host = check_loopback_host("host", host)
    port = check_int("port", port, 0, 65535)
    path = None
    if handler is not None:
        path = Path(handler).resolve()
        if not path.is_file():
            raise ValueError(f"handler must be an existing Python file, got {str(handler)!r}")
        path = str(path)
    return _handle.start(serve_chat, host, port, path, lifetime=lifetime)


class ChatClient:
    """A blocking chat client with timeouts, for a cell or a check: send lines, read lines."""

    def __init__(self, port: int, host: str = DEFAULT_HOST, timeout: float = 5.0) -> None:
        port = check_int("port", port, 1, 65535)  # a client needs the server's own port
        # The course's servers listen on loopback only: any other host is a typo, and a name
        # that does not resolve would otherwise surface as a raw socket.gaierror.
        host = check_loopback_host("host", host)
        # A chat server here answers in milliseconds; no cell waits longer than a server lives.
        timeout = check_timeout("timeout", timeout, 0.001, MAX_TIMEOUT_SECONDS)
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except socket.gaierror as exc:  # "localhost" missing from /etc/hosts, say
            raise ValueError(f"host {host!r} does not resolve on this machine ({exc.strerror}): "
                             f"use {DEFAULT_HOST!r}") from None
        self._buffer = b""

    def say(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def read(self, quiet: float = 0.3) -> list[str]:
        """Every line that arrives until none has for `quiet` seconds (0: what is there now)."""
        self.sock.settimeout(quiet)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self._buffer += data
        except (TimeoutError, BlockingIOError):  # quiet for long enough, or nothing now
            pass
        *lines, self._buffer = self._buffer.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
