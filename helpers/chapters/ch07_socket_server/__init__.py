"""Chapter 07: socket servers — gevent against threads and asyncio, then gevent on every core.

Every server runs in a child process beside the kernel, started and stopped from a cell (or
from a terminal: ``python -m helpers.chapters.ch07_socket_server serve --help``)::

    kernel (never patched)                 server children                  a load child
    ----------------------                 ---------------                  ------------
    start_server(model, port, workers) ──► prefork.serve ─► servers.run_model
                                             (gevent | threads | asyncio |
                                              socketserver plain/threading/forking)
    start_chat(port, handler)          ──► chat.serve_chat (gevent, hooks from a file)
    compare_models / prefork_scaling   ──► ...................................► loadgen.load
    idle_memory                        ──► ...................................► loadgen.hold_idle
    misbehaving_clients                ──► ...................................► loadgen.bad_clients
    handle.stop()  ◄── the server's books: counts, one span per connection, its pid

The modules: `handle` (servers beside the kernel, on `helpers.runners.start_patched`),
`models` (the models' names), `servers` (the line protocol under every model), `books` (what
each server records), `bare` (the ten-line gevent echo, the yardstick), `prefork` (binding, N
workers on one socket, `start_server`), `chat`, `loadgen` (asyncio clients, always bounded),
`limits` (open files: one per client), `memory` (idle clients and RSS), `demos` (the chapter's
measurements), `views` (plots and `make_panel`).

What the notebooks show (``show_source``) is the code that serves a client, each piece a short
top-level function: `handle_connection` (a greenlet's or a thread's client),
`handle_connection_async` (an asyncio task's), `serve_gevent`, `serve_socketserver`,
`serve_prefork` and its `prefork.worker`, the chat's `serve_client` and `write_outbox`, the
reaper's `Book.sweep`. What they do not show is listed in `__plumbing__`, with the reason.
"""

from .bare import bare_echo
from .books import Book
from .chat import Chat, ChatClient, serve_client, start_chat, write_outbox
from .demos import (
    LOADED_MODELS,
    blocking_handler,
    compare_models,
    load_port,
    misbehaving_clients,
    one_client_at_a_time,
    prefork_scaling,
)
from .handle import ServerHandle, stop_all
from .limits import open_files_limit
from .memory import idle_memory
from .prefork import DEFAULT_HOST, open_listener, serve_prefork, start_server, summarize
from .servers import (
    HANDLERS,
    MODELS,
    SOCKETSERVER_MODELS,
    handle_connection,
    handle_connection_async,
    reply_to,
    serve_asyncio,
    serve_gevent,
    serve_socketserver,
)

# Not the lesson: what a notebook calls to run, measure or tabulate the servers it shows. Each
# runs code whose source the page shows (the servers, the chat handlers, the pre-fork master).
__plumbing__ = (
    # Starts a shown server (serve_gevent, serve_socketserver, serve_asyncio, prefork) in a child
    # beside the kernel: parameter checks, the child, its stop pipe and lifetime.
    "start_server",
    # Starts the shown chat server (serve_client, write_outbox) in a child beside the kernel.
    "start_chat",
    # A table: sums a server's per-process books (accepted, lines, outcomes, connections per pid).
    "summarize",
    # The measurement harness: starts the shown servers, loads each in turn from one load
    # generator child (asyncio clients, bounded), and collects requests/s and percentiles.
    "compare_models",
    # The same harness over 1..N pre-fork workers of the shown gevent server.
    "prefork_scaling",
    # A measurement: a child holds idle clients against each shown server and reads its RSS.
    "idle_memory",
    # A measurement: scripted bad clients beside a good one against a shown server.
    "misbehaving_clients",
)

# The views need matplotlib and ipywidgets (over a second to import): every server and load
# child imports this package, so they load only when a notebook asks for one of them.
_VIEWS = ("make_panel", "plot_bad_clients", "plot_latency", "plot_load", "plot_memory",
          "plot_rps", "plot_scaling", "plot_served_by", "plot_waits")


def __getattr__(name: str):
    if name in _VIEWS:
        from . import views

        return getattr(views, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_HOST",
    "HANDLERS",
    "LOADED_MODELS",
    "MODELS",
    "SOCKETSERVER_MODELS",
    "Book",
    "Chat",
    "ChatClient",
    "ServerHandle",
    "bare_echo",
    "blocking_handler",
    "compare_models",
    "handle_connection",
    "handle_connection_async",
    "idle_memory",
    "load_port",
    "make_panel",
    "misbehaving_clients",
    "one_client_at_a_time",
    "open_files_limit",
    "open_listener",
    "plot_bad_clients",
    "plot_latency",
    "plot_load",
    "plot_memory",
    "plot_rps",
    "plot_scaling",
    "plot_served_by",
    "plot_waits",
    "prefork_scaling",
    "reply_to",
    "serve_asyncio",
    "serve_client",
    "serve_gevent",
    "serve_prefork",
    "serve_socketserver",
    "start_chat",
    "start_server",
    "stop_all",
    "summarize",
    "write_outbox",
]
