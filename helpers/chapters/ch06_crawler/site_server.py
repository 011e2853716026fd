"""The local site's child: binds 127.0.0.1, serves `site_app.SiteApp`, writes its report.

Started by `site.Site` (``python -m helpers.chapters.ch06_crawler.site_server`` with hidden
ready/report files), or from a terminal, as ``python -m helpers.chapters.ch06_crawler.site``::

    main(argv) ── parse, check ──► _serve(spec, host, port, ...)
        WSGIServer(spawn=Pool(capacity)): a greenlet per connection, at most `capacity` at once;
                                          the rest wait in the listen queue
        ready file ◄── {"port", "pid"} (or {"error"}: a busy port), written whole, by rename
        a watcher greenlet: stop on SIGTERM/SIGINT, at the end of `lifetime`, or when the process
                            that started it is gone (then it removes the files it was given)
        report file ◄── Served, at a stop asked for

The server never patches anything: gevent's own server is cooperative.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict

from ...course import LOOPBACK, check_float, check_int, check_loopback_host
from .limits import raise_open_files_towards
from .site_app import SiteApp, reset_handler_class
from .sitemap import SiteSpec, build_sitemap

__all__ = ["FILES_PREFIX"]  # main() is the command line's (site.py runs it too)

# The folder `site.Site` makes for one child's log, ready and report files starts with this: the
# child removes a folder so named itself when it outlives the process that started it.
FILES_PREFIX = "cc-site-"
# The listen queue: connections beyond `capacity` wait here; the kernel caps it at somaxconn.
_BACKLOG = 4096
_WATCH_INTERVAL = 0.25  # how often the child checks that its parent is still there
# A site started from a terminal may run this long at most if given a lifetime (a day).
_MAX_LIFETIME = 86_400.0


def _write_json(path: str, data: dict) -> None:
    partial = path + ".partial"
    with open(partial, "w") as out:
        json.dump(data, out)
    os.replace(partial, path)  # a reader sees a whole file or none


def _serve(spec: SiteSpec, host: str, port: int, ready_file: str | None,
           report_file: str | None, parent_pid: int | None, lifetime: float | None) -> int:
    """Serve `spec` on host:port until stopped (see the module); the exit status."""
    import gevent
    from gevent.event import Event
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIServer

    raise_open_files_towards(spec.capacity * 2 + 64)
    app = SiteApp(build_sitemap(spec))
    server = WSGIServer((host, port), app, spawn=Pool(spec.capacity), backlog=_BACKLOG,
                        handler_class=reset_handler_class(), log=None)
    try:
        server.init_socket()
    except OSError as exc:
        message = (f"port {port} on {host} is already in use: choose another port, or port 0 "
                   "for a free one" if exc.errno == errno.EADDRINUSE else f"cannot bind: {exc}")
        if ready_file:
            _write_json(ready_file, {"error": message})
        print(f"error: {message}", file=sys.stderr)
        return 2
    bound = server.socket.getsockname()[1]
    stopping = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopping.set)

    orphaned = []

    def watch() -> None:
        started = time.monotonic()
        while not stopping.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                orphaned.append(True)
                stopping.set()  # the notebook that started us is gone
            if lifetime is not None and time.monotonic() - started > lifetime:
                stopping.set()
            gevent.sleep(_WATCH_INTERVAL)

    server.start()
    watcher = gevent.spawn(watch)
    if ready_file:
        _write_json(ready_file, {"port": bound, "pid": os.getpid()})
    print(f"Serving {spec.pages} pages at http://{host}:{bound}/ (start at /page/0; what was "
          f"served: /_served). Ctrl-C stops.", flush=True)
    stopping.wait()
    server.stop(timeout=0.5)  # hung requests are killed after half a second
    watcher.kill()
    if orphaned and parent_pid is not None:
        # Nobody is left to read the report or remove the files `Site` made for this child:
        # remove them here (only a folder `Site` made, named as it names them).
        for path in {os.path.dirname(f) for f in (ready_file, report_file) if f}:
            if os.path.basename(path).startswith(FILES_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
    elif report_file:
        _write_json(report_file, asdict(app.served))
    return 0


def _parser() -> argparse.ArgumentParser:
    defaults = SiteSpec()
    parser = argparse.ArgumentParser(
        prog="python -m helpers.chapters.ch06_crawler.site",
        description="Serve the course's local site on 127.0.0.1 until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--host", default=LOOPBACK, help="a loopback address (127.0.0.0/8, ::1, "
                        "localhost): the site never leaves this machine")
    for name in ("pages", "size", "links", "capacity", "seed"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    for name in ("latency", "failure_rate", "hang"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float,
                            default=getattr(defaults, name))
    parser.add_argument("--distribution", default=defaults.distribution)
    parser.add_argument("--lifetime", type=float, default=None, help="stop after this many s")
    for hidden in ("--ready-file", "--report-file"):
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line: parse, validate (a clear message for a bad value), serve."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        spec = SiteSpec(pages=args.pages, latency=args.latency, distribution=args.distribution,
                        size=args.size, links=args.links, failure_rate=args.failure_rate,
                        capacity=args.capacity, hang=args.hang, seed=args.seed)
        check_int("port", args.port, 0, 65535)
        check_loopback_host("host", args.host)
        if args.lifetime is not None:
            check_float("lifetime", args.lifetime, 0.1, _MAX_LIFETIME)
    except ValueError as exc:
        parser.error(str(exc))
    return _serve(spec, args.host, args.port, args.ready_file, args.report_file,
                  args.parent_pid, args.lifetime)




if __name__ == "__main__":
    sys.exit(main())
