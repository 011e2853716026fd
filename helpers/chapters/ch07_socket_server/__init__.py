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
`servers` (the line protocol under every model), `books` (what each server records), `bare`
(the ten-line gevent echo, the yardstick), `prefork` (binding, N workers on one socket,
`start_server`), `chat`, `loadgen` (asyncio clients, always bounded), `memory` (idle clients
and RSS), `demos` (the chapter's measurements), `views` (plots and `make_panel`).
"""

from .bare import bare_echo
from .chat import ChatClient, start_chat
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
from .memory import idle_memory, open_files_limit
from .prefork import DEFAULT_HOST, open_listener, start_server, summarize
from .servers import HANDLERS, MODELS, SOCKETSERVER_MODELS

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
    "ChatClient",
    "ServerHandle",
    "bare_echo",
    "blocking_handler",
    "compare_models",
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
    "start_chat",
    "start_server",
    "stop_all",
    "summarize",
]
