"""Checks for chapter 07 (socket servers).

- 07.1 adds a ``/nick`` command to the chat server: the answer is the path of a handler file
  (the reader writes it with ``%%writefile`` into `scratch_dir`) defining
  ``on_line(chat, client, line)``. The check starts the chat server with that handler in a child,
  drives three test clients through plain lines, a rename, a taken name and a malformed command,
  and says which of those behave as asked.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from . import Point, exercise

__all__ = ["scratch_dir"]

# Lines arrive within a few ms on 127.0.0.1; a client is "quiet" after this long without one.
_QUIET_SECONDS = 0.15
# One step of the check listens at most this long, even if a client keeps receiving.
_LISTEN_SECONDS = 2.0


def scratch_dir() -> str:
    """A folder outside the course's files for the handler a reader writes (made if missing)."""
    path = os.path.join(tempfile.gettempdir(), "cores-coroutines-ch07")
    os.makedirs(path, exist_ok=True)
    return path


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
