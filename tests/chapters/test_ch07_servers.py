"""Chapter 07 servers: every model answers lines, stops cleanly, reports what it served; the
standard library's three socketservers behave as the chapter says; busy ports and bad values."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
import time

import psutil
import pytest

from helpers.chapters.ch07_socket_server import (
    MODELS,
    SOCKETSERVER_MODELS,
    one_client_at_a_time,
    start_server,
    summarize,
)

# The most one exchange with a local server may take, however loaded the machine.
_ASK_SECONDS = 10.0


def _ask(port: int, *chunks: bytes) -> list[bytes]:
    """Send the chunks in order; after each, read until every line sent so far came back: what
    came back after each chunk. So the server answers a line while it still holds the unfinished
    rest of its chunk (after ``b"lo\nwor"``, ``hello`` comes back and ``wor`` must not). Reading
    stops when the lines are all answered, the server closed, or `_ASK_SECONDS` passed (the
    caller's assert tells)."""
    deadline = time.monotonic() + _ASK_SECONDS
    expected, replies = 0, []
    with socket.create_connection(("127.0.0.1", port), timeout=_ASK_SECONDS) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
            expected += chunk.count(b"\n")
            reply = b""
            while sum(r.count(b"\n") for r in replies) + reply.count(b"\n") < expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    return [*replies, reply]
                sock.settimeout(left)
                try:
                    got = sock.recv(4096)
                except TimeoutError:
                    return [*replies, reply]
                if not got:  # the server closed: nothing more will come
                    return [*replies, reply]
                reply += got
            replies.append(reply)
    return replies


def _gone(pids: list[int], within: float = 5.0) -> list[int]:
    """The pids still running (not zombies) once they all went or `within` s passed."""
    deadline = time.monotonic() + within
    while True:
        left = [p for p in pids if psutil.pid_exists(p) and
                psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


@pytest.mark.parametrize("model", MODELS + SOCKETSERVER_MODELS)
def test_every_model_echoes_whole_lines_and_reports(model):
    server = start_server(model)
    try:
        assert server.info["host"] == "127.0.0.1"  # never beyond this machine by default
        replies = _ask(server.info["port"], b"hel", b"lo\nwor", b"ld\n")
    finally:
        books = server.stop()
    assert replies == [b"", b"hello\n", b"world\n"]  # half a line waits for its end, then whole
    if model != "forking":  # a forked handler's counts die with its process
        totals = summarize(books)
        assert totals["accepted"] == 1 and totals["lines"] == 2


def test_plain_serves_one_client_at_a_time_threading_and_forking_do_not():
    result = one_client_at_a_time(hold=0.4)["models"]
    assert result["plain"]["B waited s"] >= 0.3  # B waited until A left
    assert result["threading"]["B waited s"] < 0.3
    assert result["forking"]["B waited s"] < 0.3
    pid = lambda who: who.split(",")[0]  # noqa: E731 - "served by pid N, THREAD"
    assert pid(result["plain"]["A"]) == pid(result["plain"]["B"])
    assert pid(result["threading"]["A"]) == pid(result["threading"]["B"])
    assert result["threading"]["A"] != result["threading"]["B"]  # same process, two threads
    assert pid(result["forking"]["A"]) != pid(result["forking"]["B"])  # a process each


def test_prefork_workers_share_one_socket_and_go_away(start_method):
    server = start_server("gevent", workers=2, handler="cpu", cpu_ms=2.0,
                          start_method=start_method)
    pids = server.info["pids"]
    try:
        assert len(set(pids)) == 2
        socks = [socket.create_connection(("127.0.0.1", server.info["port"]), timeout=5)
                 for _ in range(20)]
        for sock in socks:
            sock.sendall(b"x\n")
        for sock in socks:
            assert sock.recv(10) == b"x\n"
            sock.close()
    finally:
        books = server.stop()
    served = summarize(books)["connections per pid"]
    assert set(served) == set(pids) and sum(served.values()) == 20
    assert all(count > 0 for count in served.values())  # a busy worker leaves clients to the other
    assert _gone(pids) == []


def test_kill_takes_the_workers_with_it():
    server = start_server("gevent", workers=2)
    pids = server.info["pids"]
    server.kill()  # returns once the group is killed and reaped: nothing to wait for
    assert not server.running
    assert _gone(pids) == []
    assert server.stop() is None  # a killed server has no value; asking is harmless


def test_a_server_stops_by_itself_at_the_end_of_its_lifetime():
    server = start_server("asyncio", lifetime=0.5)
    deadline = time.monotonic() + 10
    while server.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server.running
    assert summarize(server.stop())["accepted"] == 0


def test_busy_port_is_a_clear_error_in_the_cell_and_in_the_terminal():
    server = start_server("gevent")
    port = server.info["port"]
    try:
        with pytest.raises(OSError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_server("threads", port)
        done = subprocess.run(
            [sys.executable, "-m", "helpers.chapters.ch07_socket_server", "serve", "--port",
             str(port), "--seconds", "1"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    finally:
        server.stop()


def test_terminal_server_prints_its_address_and_what_it_served():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "helpers.chapters.ch07_socket_server", "serve", "--model",
         "threads", "--port", str(port), "--seconds", "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert f"listening on 127.0.0.1:{port}" in first and f"nc 127.0.0.1 {port}" in first
        assert _ask(port, b"from a terminal\n") == [b"from a terminal\n"]
        rest = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
        proc.wait()
    assert "'accepted': 1" in rest


@pytest.mark.parametrize(("options", "message"), [
    ({"model": "twisted"}, "model must be one of"),
    ({"workers": 0}, "workers must be an integer from 1 to 16"),
    ({"port": 70_000}, "port must be an integer from 0 to 65535"),
    ({"host": "example.com"}, "host must be a loopback address"),
    ({"host": "::1"}, "host must be an IPv4 loopback address"),
    ({"handler": "shout"}, "handler must be one of"),
    ({"idle_timeout": 0}, "idle_timeout must be a number"),
    ({"model": "forking", "workers": 2}, "workers must be 1 for the forking model"),
])
def test_bad_parameters_are_refused_before_anything_starts(options, message):
    before = psutil.Process().children(recursive=True)
    with pytest.raises(ValueError, match=message):
        start_server(**options)
    assert psutil.Process().children(recursive=True) == before


def test_a_terminal_server_stops_cleanly_on_kill():
    proc = subprocess.Popen(
        [sys.executable, "-m", "helpers.chapters.ch07_socket_server", "serve", "--port", "0"],
        stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        server_pid = int(first.split("(pid ")[1].split(")")[0])
        proc.terminate()
        rest = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and "served:" in rest
    assert not psutil.pid_exists(server_pid) or \
        psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE


def test_handle_connection_answers_whole_lines_only_and_books_the_client():
    """The handler the gevent and threaded servers share, run here in a plain thread."""
    import select
    import threading

    from helpers.chapters.ch07_socket_server import Book, handle_connection
    from helpers.chapters.ch07_socket_server.servers import Settings

    book = Book("threads", Settings(handler="whoami"))
    server_side, client = socket.socketpair()
    serving = threading.Thread(target=handle_connection, args=(server_side, book))
    serving.start()
    try:
        client.settimeout(5)
        client.sendall(b"half a ")
        assert select.select([client], [], [], 0.2)[0] == []  # half a line gets no answer
        client.sendall(b"line\nand another\n")
        data = b""
        while data.count(b"\n") < 2:
            data += client.recv(4096)
        assert data.count(b"served by pid") == 2
    finally:
        client.close()
        serving.join(5)
        server_side.close()
    assert not serving.is_alive()
    assert book.report()["lines"] == 2 and book.report()["outcomes"] == {"closed by client": 1}


# -- loopback only: the course never listens beyond this machine ---------------------------------
_NOT_LOOPBACK = ["", "0.0.0.0", "::", "192.0.2.1", "example.com", None]


def _listening_ports() -> set[int]:
    return {c.laddr.port for c in psutil.Process().net_connections("tcp")
            if c.status == psutil.CONN_LISTEN}


def _host_calls():
    from helpers.chapters.ch07_socket_server import ChatClient, load_port, open_listener, start_chat
    from helpers.chapters.ch07_socket_server.bare import serve_bare
    from helpers.chapters.ch07_socket_server.chat import serve_chat
    from helpers.chapters.ch07_socket_server.handle import Control

    return {"open_listener": lambda host: open_listener(host),
            "start_server": lambda host: start_server(host=host),
            "start_chat": lambda host: start_chat(host=host),
            "load_port": lambda host: load_port(9, host=host, seconds=0.1),
            "ChatClient": lambda host: ChatClient(9, host=host, timeout=0.5),
            "serve_bare": lambda host: serve_bare(Control(0.5, False), host=host),
            "serve_chat": lambda host: serve_chat(Control(0.5, False), host, 0, None)}


@pytest.mark.parametrize("host", _NOT_LOOPBACK)
@pytest.mark.parametrize("call", sorted(_host_calls()))
def test_every_server_and_client_refuses_a_host_beyond_loopback(call, host):
    children, listening = psutil.Process().children(recursive=True), _listening_ports()
    outcome = None
    try:
        with pytest.raises(ValueError, match=r"host must be a loopback address"):
            outcome = _host_calls()[call](host)
    finally:  # a call that wrongly succeeded leaves nothing running behind the failure
        if hasattr(outcome, "stop"):
            outcome.stop()
        elif hasattr(outcome, "close"):
            outcome.close()
    assert psutil.Process().children(recursive=True) == children
    assert _listening_ports() == listening


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_a_loopback_host_is_served(host):
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    from helpers.chapters.ch07_socket_server import open_listener

    try:
        listener = open_listener(host)
    except OSError as exc:  # ::1 configured off, or localhost without an IPv4 entry
        pytest.skip(f"{host} cannot be bound here: {exc}")
    with listener:
        assert ipaddress.ip_address(listener.getsockname()[0]).is_loopback


def test_a_bad_control_is_refused_before_the_server_listens():
    from helpers.chapters.ch07_socket_server.bare import serve_bare
    from helpers.chapters.ch07_socket_server.chat import serve_chat
    from helpers.chapters.ch07_socket_server.prefork import serve

    listening = _listening_ports()
    for call in (lambda: serve_bare(None), lambda: serve_chat(object(), "127.0.0.1", 0, None),
                 lambda: serve("not a control")):
        with pytest.raises(TypeError, match="control must be the Control"):
            call()
    assert _listening_ports() == listening  # no listening socket left open behind the error


def test_a_chat_client_names_a_host_that_does_not_resolve(monkeypatch):
    from helpers.chapters.ch07_socket_server import ChatClient

    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", no_such_name)
    with pytest.raises(ValueError, match=r"host 'localhost' does not resolve"):
        ChatClient(9, host="localhost", timeout=0.5)
