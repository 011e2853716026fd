"""Valid arguments for chapter 07's public callables with required parameters (see _fuzz.py).

Nothing here starts a server: the fuzz only sends bad values, which each callable refuses before
it binds, connects or starts a child. Where a valid call would run, it is small and bounded: port
9 (the discard port, where nothing listens on this machine) for clients, a one-second lifetime.
"""

from __future__ import annotations

# Module paths: run_model, load, serve and call are names other chapters use too.
_PACKAGE = "helpers.chapters.ch07_socket_server"


def baselines() -> dict:
    import socket

    from matplotlib.figure import Figure

    from helpers.chapters.ch07_socket_server.bare import serve_bare
    from helpers.chapters.ch07_socket_server.books import Book
    from helpers.chapters.ch07_socket_server.handle import Control
    from helpers.chapters.ch07_socket_server.servers import Settings

    def control():
        return Control(1.0, False)  # no stop watcher thread: nothing runs until asked

    def served():
        return Book("gevent", Settings())

    nowhere = ("127.0.0.1", 9)
    book = {"pid": 1, "spans": [(1, 0, 1_000_000, 1, "closed by client")]}
    return {
        f"{_PACKAGE}.bare.serve_bare": {"control": control()},
        f"{_PACKAGE}.books.Book": {"model": "gevent", "settings": Settings()},
        f"{_PACKAGE}.books.Conn": {"conn_id": 1, "closer": lambda: None},
        f"{_PACKAGE}.chat.Client": {"name": "guest1", "address": nowhere, "outbox": None},
        f"{_PACKAGE}.chat.ChatClient": {"port": nowhere[1], "timeout": 0.5},
        f"{_PACKAGE}.chat.serve_chat": {"control": control(), "host": nowhere[0], "port": 0,
                                        "handler_path": None},
        f"{_PACKAGE}.handle.call": {"fn": serve_bare, "timeout": 1.0},
        f"{_PACKAGE}.handle.run_controlled": {"module": f"{_PACKAGE}.bare", "name": "serve_bare",
                                              "lifetime": 1.0, "watch": False, "args": (),
                                              "kwargs": {}},
        f"{_PACKAGE}.handle.start": {"fn": serve_bare, "lifetime": 1.0, "ready_timeout": 1.0},
        f"{_PACKAGE}.loadgen.bad_clients": {"control": None, "host": nowhere[0],
                                            "port": nowhere[1], "watch": 0.2, "big": 10},
        f"{_PACKAGE}.loadgen.check_load": {"connections": 1, "rounds": 1, "size": 2,
                                           "seconds": 0.05},
        f"{_PACKAGE}.loadgen.hold_idle": {"control": None, "host": nowhere[0],
                                          "port": nowhere[1], "steps": [1], "server_pid": 1,
                                          "seconds": 0.1, "nofile": 64},
        f"{_PACKAGE}.loadgen.load": {"control": None, "targets": [("x", *nowhere)],
                                     "connections": 1, "rounds": 1, "size": 2, "seconds": 0.05},
        f"{_PACKAGE}.placement.cores_apart": {"server_pids": [1]},
        f"{_PACKAGE}.prefork.serve": {"control": control(), "port": 0},
        f"{_PACKAGE}.prefork.serve_prefork": {"control": control(), "listener": socket.socket(),
                                              "model": "gevent", "settings": Settings(),
                                              "workers": 1},
        f"{_PACKAGE}.servers.serve_gevent": {"listener": socket.socket(), "book": served(),
                                             "stop_fd": 0, "deadline": 0.0},
        f"{_PACKAGE}.servers.serve_socketserver": {"listener": socket.socket(), "kind": "plain",
                                                   "book": served(), "stop_fd": 0,
                                                   "deadline": 0.0},
        f"{_PACKAGE}.servers.serve_asyncio": {"listener": socket.socket(), "book": served(),
                                              "stop_fd": 0, "deadline": 0.0},
        f"{_PACKAGE}.servers.run_model": {"listener": socket.socket(), "model": "gevent",
                                          "settings": Settings(), "stop_fd": 0, "deadline": 0.0},
        f"{_PACKAGE}.views.plot_served_by": {"books": [book], "ax": Figure().add_subplot()},
    }
