"""Chapter 07's servers from a terminal: ``python -m helpers.chapters.ch07_socket_server ...``.

    python -m helpers.chapters.ch07_socket_server serve --model gevent --port 8000 --workers 2
    python -m helpers.chapters.ch07_socket_server chat --port 8001
    python -m helpers.chapters.ch07_socket_server load --port 8000 --connections 100

``serve`` runs an echo server (models: gevent, threads, asyncio, plain, threading, forking) and
``chat`` the chat server until Ctrl-C or ``--seconds`` (at most an hour), then print what they
served; ``load`` runs the course's load generator against a port. Everything binds 127.0.0.1;
``--host`` takes another loopback address (127.0.0.0/8, ::1, localhost), never a wider one.
Try it with ``nc 127.0.0.1 8000`` from another terminal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from ...course import MAX_TIMEOUT_SECONDS
from .chat import start_chat
from .demos import load_port
from .loadgen import MAX_SECONDS
from .prefork import DEFAULT_HOST, MAX_WORKERS, start_server, summarize
from .servers import HANDLERS, MODELS, SOCKETSERVER_MODELS

# A terminal server runs until Ctrl-C, but at most this long: a child's lifetime is bounded by an
# hour (MAX_TIMEOUT_SECONDS), and the server gets a few seconds beyond `--seconds` to stop.
_MAX_SECONDS = MAX_TIMEOUT_SECONDS - 10.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers.chapters.ch07_socket_server",
                                     description="Chapter 07's servers and load generator.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="an echo server")
    serve.add_argument("--model", default="gevent", choices=MODELS + SOCKETSERVER_MODELS)
    serve.add_argument("--workers", type=int, default=1, help=f"processes, 1 to {MAX_WORKERS}")
    serve.add_argument("--handler", default="echo", choices=HANDLERS)
    chat = commands.add_parser("chat", help="the chat server")
    chat.add_argument("--handler-file", default=None, help="a file defining on_line etc.")
    load = commands.add_parser("load", help="load a running echo server")
    load.add_argument("--connections", type=int, default=100)
    load.add_argument("--size", type=int, default=64, help="bytes per line")
    for sub in (serve, chat, load):
        sub.add_argument("--host", default=DEFAULT_HOST)
        sub.add_argument("--port", type=int, default=8000 if sub is not chat else 8001)
        sub.add_argument("--seconds", type=float, default=_MAX_SECONDS if sub is not load else 2.0)
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Ctrl-C, and a plain `kill` too, stop the server cleanly (a shell may start a background job
    # with SIGINT ignored; without this, a `kill` would leave the server child running).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.command == "load":
            if args.seconds > MAX_SECONDS:
                raise ValueError(f"seconds must be at most {MAX_SECONDS:g} for load")
            figures = load_port(args.port, args.connections, args.size, args.seconds, args.host)
            print(f"{figures['rps']:,.0f} requests/s, p50 {figures['p50 us'] / 1000:.2f} ms, "
                  f"p99 {figures['p99 us'] / 1000:.2f} ms, {figures['errors']} errors")
            return 0
        if not 0 < args.seconds <= _MAX_SECONDS:
            raise ValueError(f"seconds must be a number from 0 to {_MAX_SECONDS:g}, "
                             f"got {args.seconds:g}")
        lifetime = args.seconds + 5
        if args.command == "serve":
            server = start_server(args.model, args.port, host=args.host, workers=args.workers,
                                  handler=args.handler, lifetime=lifetime)
        else:
            server = start_chat(args.port, host=args.host, handler=args.handler_file,
                                lifetime=lifetime)
    except (ValueError, OSError, RuntimeError) as exc:  # a busy port, a bad value, a dead child
        print(f"error: {str(exc).strip().splitlines()[-1]}", file=sys.stderr)
        return 2
    info = server.info
    try:
        print(f"{args.command}: listening on {info['host']}:{info['port']} (pid "
              f"{', '.join(str(p) for p in info.get('pids', [server.pid]))}); "
              f"try: nc {info['host']} {info['port']}   — Ctrl-C stops it", flush=True)
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    # The stop is bounded (the server is killed if it takes too long): a second Ctrl-C or kill
    # must not cut it short and leave the server running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    value = server.stop()
    if args.command == "serve":
        print("served:", summarize(value))
    else:
        print(f"chat: {len(value['transcript'])} events, handler errors: {value['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
