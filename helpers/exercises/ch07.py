"""Checks for chapter 07 (socket servers).

- 07.1 adds a ``/nick`` command to the chat server: the answer is the path of a handler file
  (the reader writes it with ``%%writefile`` into ``work_folder("ch07")``) defining
  ``on_line(chat, client, line)``. The check starts the chat server with that handler in a child,
  drives three test clients through plain lines, a rename, a taken name and a malformed command,
  and says which of those behave as asked.
- 07.2 gives an asyncio echo handler an idle timeout: the answer is the path of a file defining
  ``IDLE_TIMEOUT`` and ``async def handle(reader, writer)``. The check serves it with
  ``asyncio.start_server`` in a child (`serve_handler_file`) and runs the chapter's bad clients
  against it, beside a good one::

    check("07.2", path) ──► server child: asyncio.start_server(your handle) on 127.0.0.1
                       ──► client child: loadgen.bad_clients (silent, half a line, leaves
                                          mid-reply, a good client pinging every 20 ms)
                       ◄── when each bad client was closed; the good client's replies
"""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path
from typing import Any

from helpers.course import LOOPBACK

from . import Point, exercise

__all__ = ["serve_handler_file"]

# Lines arrive within a few ms on 127.0.0.1; a client is "quiet" after this long without one.
_QUIET_SECONDS = 0.15
# One step of the check listens at most this long, even if a client keeps receiving.
_LISTEN_SECONDS = 2.0


def _hear(clients) -> list[list[str]]:
    """What each client received until none of them received anything for a quiet spell."""
    import select

    heard: list[list[str]] = [[] for _ in clients]
    deadline = time.monotonic() + _LISTEN_SECONDS
    while time.monotonic() < deadline:  # a closed socket stays readable: never loop forever
        readable, _, _ = select.select(clients, [], [], _QUIET_SECONDS)
        if not readable:
            return heard
        for index, client in enumerate(clients):
            if client in readable:
                heard[index] += client.read(0)
    return heard


@exercise("07.1", "A /nick command for the chat server")
def _nick(answer):
    from ..chapters.ch07_socket_server.chat import ChatClient, start_chat

    if not isinstance(answer, (str, Path)) or not str(answer).endswith(".py"):
        yield Point(False, "answer should be the path of your handler file, a name ending in .py")
        return
    if not Path(answer).is_file():
        yield Point(False, f"there is no file {str(answer)!r}: run the %%writefile cell first")
        return
    try:
        server = start_chat(handler=answer, lifetime=60)
    except Exception as exc:  # a syntax error in the file: the server could not load it
        yield Point(False, f"the chat server could not load your file: {str(exc).splitlines()[-1]}")
        return
    try:
        port = server.info["port"]
        with ChatClient(port) as a, ChatClient(port) as b, ChatClient(port) as c:
            clients = [a, b, c]
            _hear(clients)  # the welcome and join notices
            yield from _points(a, b, c, clients)
    finally:
        value = server.stop()
    errors = value["errors"]
    yield Point(not errors, "your on_line never raised" if not errors else
                f"your on_line raised {len(errors)} time(s), first: {errors[0]}")


def _points(a, b, c, clients):
    a.say("hello")
    heard = _hear(clients)
    yield Point(heard == [[], ["guest1: hello"], ["guest1: hello"]],
                "a plain line reaches every other client as 'NAME: text', and not its sender"
                if heard == [[], ["guest1: hello"], ["guest1: hello"]] else
                "a plain line should reach every other client as 'guest1: hello' (and not "
                "come back to its sender)")

    a.say("/nick alice")
    heard = _hear(clients)
    told_others = heard[1] == ["* guest1 is now alice"] and heard[2] == heard[1]
    yield Point(told_others, "after /nick, every other client is told '* OLD is now NEW'"
                if told_others else "after '/nick alice' from guest1, each other client should "
                "receive exactly one line: '* guest1 is now alice'")
    yield Point(heard[0] == ["* you are now alice"], "the renamed client is told '* you are now "
                "NEW'" if heard[0] == ["* you are now alice"] else "after '/nick alice', its "
                "sender should receive exactly one line: '* you are now alice'")

    a.say("hi")
    heard = _hear(clients)
    renamed = heard[1] == ["alice: hi"] and heard[2] == ["alice: hi"]
    yield Point(renamed, "the renamed client's lines carry its new name" if renamed else
                "after the rename, guest1's lines should reach the others as 'alice: hi'")

    b.say("/nick alice")
    heard = _hear(clients)
    b.say("still me")
    kept = _hear(clients)
    refused = (heard == [[], ["! alice is taken"], []]
               and kept[0] == ["guest2: still me"] and kept[2] == ["guest2: still me"])
    yield Point(refused, "a name in use is refused with '! NAME is taken', and nothing changes"
                if refused else "'/nick alice' while alice is connected should send only "
                "'! alice is taken' to its sender, and leave its name as it was")

    bad = []
    for line in ("/nick", "/nick two words"):
        c.say(line)
        bad.append(_hear(clients))
    usage = all(h == [[], [], ["! usage: /nick NAME"]] for h in bad)
    yield Point(usage, "'/nick' without one name gets the usage line, and the others hear "
                "nothing" if usage else "'/nick' with no name, or with two words, should send "
                "only '! usage: /nick NAME' to its sender")


# 07.2 -----------------------------------------------------------------------------------------
# The idle timeouts the check accepts: long enough to tell a timeout from an immediate close on a
# busy machine, short enough that the check takes a few seconds.
_IDLE_RANGE = (0.2, 2.0)
# A silent client may be closed this long after the idle timeout (scheduling on a busy machine).
_LATE_SECONDS = 1.0
# The mid-reply client's line: small enough for StreamReader.readline's 64 KiB limit.
_BIG_LINE = 1000


def _load(path: str):
    spec = importlib.util.spec_from_file_location("idle_echo", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"path must be a Python file, got {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve_handler_file(control, path: str) -> dict[str, Any]:
    """The check's server child: ``asyncio.start_server(handle)`` from the reader's file."""
    import asyncio

    module = _load(str(path))
    idle = _idle_timeout(module)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(control.stop_fd, stop.set)
        server = await asyncio.start_server(module.handle, LOOPBACK, 0)
        control.ready(port=server.sockets[0].getsockname()[1], idle=idle)
        try:
            await asyncio.wait_for(stop.wait(), control.remaining())
        except asyncio.TimeoutError:
            pass
        server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:  # the handlers still running: they end here
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    asyncio.run(main())
    return {}


def _idle_timeout(module) -> float:
    """The file's IDLE_TIMEOUT, checked, or a ValueError that says what is wrong."""
    import inspect

    if not inspect.iscoroutinefunction(getattr(module, "handle", None)):
        raise ValueError("the file should define `async def handle(reader, writer)`")
    idle = getattr(module, "IDLE_TIMEOUT", None)
    low, high = _IDLE_RANGE
    if not isinstance(idle, (int, float)) or math.isnan(idle) or not low <= idle <= high:
        raise ValueError(f"IDLE_TIMEOUT should be a number of seconds from {low} to {high}, "
                         f"got {idle!r}")
    return float(idle)


@exercise("07.2", "An idle timeout for an asyncio echo server")
def _idle(answer):
    from ..chapters.ch07_socket_server import handle as server_child
    from ..chapters.ch07_socket_server.loadgen import bad_clients

    if not isinstance(answer, (str, Path)) or not str(answer).endswith(".py"):
        yield Point(False, "answer should be the path of your file, a name ending in .py")
        return
    if not Path(answer).is_file():
        yield Point(False, f"there is no file {str(answer)!r}: run the %%writefile cell first")
        return
    try:
        server = server_child.start(serve_handler_file, str(Path(answer).resolve()),
                                    lifetime=60)
    except Exception as exc:  # noqa: BLE001 - the file did not load, or IDLE_TIMEOUT is wrong
        lines = str(exc).strip().splitlines() or [repr(exc)]
        yield Point(False, f"the server could not use your file: {lines[-1]}")
        return
    idle = server.info["idle"]
    watch = 3 * idle  # the good client keeps talking three idle timeouts long
    try:
        seen = server_child.call(bad_clients, LOOPBACK, server.info["port"], watch,
                                 _BIG_LINE, timeout=watch + 20)
    finally:
        try:
            server.stop(timeout=3.0)
        except Exception:  # noqa: BLE001 - a handler stuck in a blocking call: it was killed
            pass
    yield from _idle_points(seen, idle)


def _closed_point(what: str, after: float | None, idle: float, busy: bool) -> Point:
    if after is None:
        return Point(False, f"the {what} client was never closed: after IDLE_TIMEOUT seconds "
                            "without a complete line, the handler should close the connection")
    if after < 0.8 * idle:
        return Point(False, f"the {what} client was closed after {after:.2f} s, before "
                            f"IDLE_TIMEOUT ({idle:g} s) had passed")
    if after > idle + _LATE_SECONDS:
        if busy:
            return Point.unsure(f"the {what} client was closed after {after:.2f} s, "
                                "late, but the good client also waited long for its replies: "
                                "the machine looks busy; run the check again")
        return Point(False, f"the {what} client was closed only after {after:.2f} s: the idle "
                            f"timeout ({idle:g} s) should count from its last line")
    return Point(True, f"the {what} client was closed after {after:.2f} s of silence "
                       f"(IDLE_TIMEOUT {idle:g} s)")


def _idle_points(seen: dict[str, Any], idle: float):
    good = seen["good client"]
    busy = good["worst us"] / 1e6 > idle / 2
    yield _closed_point("silent", seen["silent closed after s"], idle, busy)
    yield _closed_point("half-a-line", seen["half line closed after s"], idle, busy)
    talks = good["requests"] > 0 and good["failures"] == 0
    yield Point(talks, f"a client that sends a line every 20 ms for {3 * idle:g} s got all its "
                       f"{good['requests']} echoes and stayed connected" if talks else
                "a client that keeps sending lines should get every echo and stay connected "
                f"(it lost {good['failures']} of {good['requests']}): the timeout is for "
                "silence, not for the connection's whole life")
