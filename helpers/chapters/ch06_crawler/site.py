"""The local site a crawler crawls: a gevent WSGI server in a child process on 127.0.0.1.

From a notebook, always inside ``with`` (the child is stopped and reaped however the block ends)::

    notebook kernel                                 child: python -m <this module>
    ---------------                                 ------------------------------
    with Site(pages=300, latency=0.05) as site: ──► bind 127.0.0.1:<free port>, write the ready file
        crawl(site.start_url)   ── HTTP GET ──────► WSGIServer(spawn=Pool(capacity)): one greenlet
                                                    per connection, at most `capacity` at once; the
                                                    rest wait in the listen queue
        site.served()           ── GET /_served ──► what it answered so far, per path (JSON);
                                   ?reset_peak: the most at once is counted afresh from then on
    site.report  ◄── report file, written at stop ─ SIGTERM: stop serving, write the report, exit

From a terminal (a teacher's demo; Ctrl-C stops it)::

    python -m helpers.chapters.ch06_crawler.site --port 8000 --pages 300 --latency 0.05
    curl -i http://127.0.0.1:8000/page/0          # a page, with its links
    curl http://127.0.0.1:8000/_served            # what the site served, as JSON

Every response carries ``Connection: close``, so one connection is one request and `capacity`
bounds requests in flight. The server never patches anything: gevent's own server is cooperative.
The child also stops by itself when the process that started it is gone, or after `lifetime`.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...course import check_float, check_int
from ...runners.cleanup import kill_process_group
from .sitemap import Sitemap, SiteSpec, build_sitemap, page_path

__all__ = ["LOOPBACK", "Served", "Site", "SiteError"]  # main() is the command line's

LOOPBACK = ("127.0.0.1", "localhost", "::1")  # the only hosts the site binds: nothing leaves here
# A site started from Python stops by itself after this long even if nobody stops it (a kernel
# killed with -9 cannot run its clean-up): long enough for any chapter, short for a forgotten one.
_DEFAULT_LIFETIME = 900.0
# Waiting for the child to bind: Python and gevent start in well under a second; a loaded 2-core
# machine may take a few.
_START_TIMEOUT = 20.0
_POLL = 0.02  # how often the parent looks for the ready file (and so reacts to an interrupt)
# After SIGTERM the child gets this long to stop (it gives hung requests 0.5 s), then SIGKILL.
_STOP_TIMEOUT = 5.0
# The listen queue: connections beyond `capacity` wait here; the kernel caps it at somaxconn.
_BACKLOG = 4096
_WATCH_INTERVAL = 0.25  # how often the child checks that its parent is still there
_FILLER = "All work and no play makes a crawler a dull program. "  # page padding, to reach `size`


class SiteError(RuntimeError):
    """The site's child process failed to start or died: the message holds its own words."""


@dataclass
class Served:
    """What the site answered: for each path, the outcome of every request in order.

    An outcome is ``"200"``, ``"500"``, ``"404"``, ``"reset"`` or ``"hang"``.
    ``peak_in_flight`` is the most requests the server was handling at once.
    """

    by_path: dict[str, list[str]] = field(default_factory=dict)
    requests: int = 0
    peak_in_flight: int = 0

    def outcomes(self, path: str) -> list[str]:
        return self.by_path.get(path, [])

    def since(self, before: Served) -> Served:
        """What was served after `before` was taken: one crawl's share of a site serving several."""
        by_path = {path: got[len(before.outcomes(path)):] for path, got in self.by_path.items()}
        by_path = {path: got for path, got in by_path.items() if got}
        return Served(by_path, self.requests - before.requests, self.peak_in_flight)

    def final(self) -> dict[str, str]:
        """``{path: outcome of its last request}``."""
        return {path: got[-1] for path, got in self.by_path.items() if got}


# -- the child: the server ---------------------------------------------------------------------
class _Reset(Exception):
    """Raised by the application to make the handler reset the connection."""


class _App:
    """The WSGI application: answers from the sitemap, counts what it served."""

    def __init__(self, sitemap: Sitemap) -> None:
        self.sitemap = sitemap
        self.served = Served()
        self.in_flight = 0

    def __call__(self, environ, start_response):
        import gevent

        path = environ.get("PATH_INFO", "/")
        if path == "/_served":
            report = json.dumps(asdict(self.served))
            if environ.get("QUERY_STRING") == "reset_peak":  # count the most at once afresh
                self.served.peak_in_flight = self.in_flight
            return self._reply(start_response, "200 OK", report, "application/json")
        if path == "/":
            return self._reply(start_response, "200 OK", self._index())
        page = self.sitemap.page(path)
        self.in_flight += 1
        self.served.peak_in_flight = max(self.served.peak_in_flight, self.in_flight)
        try:
            attempts = self.served.by_path.setdefault(path, [])
            outcome = "404" if page is None else page.outcome(len(attempts) + 1)
            attempts.append(outcome)
            self.served.requests += 1
            if page is not None:  # a wrong path is answered at once, a page after its latency
                gevent.sleep(self.sitemap.spec.hang if outcome == "hang" else page.latency)
            if outcome == "reset":
                raise _Reset(path)
            if outcome == "404":
                return self._reply(start_response, "404 Not Found", f"no page at {path}\n",
                                   "text/plain")
            if outcome == "500":
                return self._reply(start_response, "500 Internal Server Error",
                                   "something broke here (on purpose)\n", "text/plain")
            return self._reply(start_response, "200 OK", self._page(page))
        finally:
            self.in_flight -= 1

    @staticmethod
    def _reply(start_response, status: str, text: str, kind: str = "text/html"):
        body = text.encode()
        start_response(status, [("Content-Type", f"{kind}; charset=utf-8"),
                                ("Content-Length", str(len(body))), ("Connection", "close")])
        return [body]

    def _page(self, page) -> str:
        links = "".join(f'<li><a href="{page_path(t)}">page {t}</a></li>' for t in page.links)
        head = (f"<!doctype html><html><head><title>Page {page.index}</title></head><body>"
                f"<h1>Page {page.index}</h1><ul>{links}</ul><p>")
        tail = "</p></body></html>\n"
        room = max(0, self.sitemap.spec.size - len(head) - len(tail))
        filler = (_FILLER * (room // len(_FILLER) + 1))[:room]
        return head + filler + tail

    def _index(self) -> str:
        spec = self.sitemap.spec
        return (f"<!doctype html><html><body><h1>The course's local site</h1><p>{spec.pages} "
                f"pages; start at <a href='/page/0'>/page/0</a>; what was served: "
                f"<a href='/_served'>/_served</a></p><pre>{spec}</pre></body></html>\n")


# The folder `Site` makes for one child's log, ready and report files (the child removes it
# itself when it outlives the process that started it).
_FILES_PREFIX = "cc-site-"


def _handler_class():
    from gevent.pywsgi import WSGIHandler

    class _Handler(WSGIHandler):
        def run_application(self):
            try:
                super().run_application()
            except _Reset:
                # Linger 0: close() sends a TCP RST instead of a FIN, so the client sees
                # "connection reset by peer" mid-request, as from a crashed server.
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                raise OSError(errno.ECONNRESET, "reset on purpose") from None  # closed quietly

    return _Handler


def _write_json(path: str, data: dict) -> None:
    partial = path + ".partial"
    with open(partial, "w") as out:
        json.dump(data, out)
    os.replace(partial, path)  # a reader sees a whole file or none


def _serve(spec: SiteSpec, host: str, port: int, ready_file: str | None,
           report_file: str | None, parent_pid: int | None, lifetime: float | None) -> int:
    import gevent
    from gevent.event import Event
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIServer

    _raise_open_files(spec.capacity * 2 + 64)
    app = _App(build_sitemap(spec))
    server = WSGIServer((host, port), app, spawn=Pool(spec.capacity), backlog=_BACKLOG,
                        handler_class=_handler_class(), log=None)
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
            if os.path.basename(path).startswith(_FILES_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
    elif report_file:
        _write_json(report_file, asdict(app.served))
    return 0


def _raise_open_files(wanted: int) -> None:
    """Raise this process's soft limit on open files towards `wanted` (within the hard limit)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _parser() -> argparse.ArgumentParser:
    defaults = SiteSpec()
    parser = argparse.ArgumentParser(
        prog="python -m helpers.chapters.ch06_crawler.site",
        description="Serve the course's local site on 127.0.0.1 until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK)
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
        if args.lifetime is not None:
            check_float("lifetime", args.lifetime, 0.1, 86_400)
    except ValueError as exc:
        parser.error(str(exc))
    return _serve(spec, args.host, args.port, args.ready_file, args.report_file,
                  args.parent_pid, args.lifetime)


# -- the parent: a handle that starts, queries and stops the child -----------------------------
def _kill_and_remove(proc: subprocess.Popen, directory: str) -> None:
    _kill(proc)
    shutil.rmtree(directory, ignore_errors=True)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        kill_process_group(proc.pid)  # its own session: the group id is its pid
    try:
        proc.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        pass


class Site:
    """The local site, served by a child process while the ``with`` block runs.

    >>> with Site(pages=50, latency=0.01) as site:          # doctest: +SKIP
    ...     site.start_url, len(site.sitemap.reachable())
    ('http://127.0.0.1:41873/page/0', 50)

    Parameters are those of `SiteSpec` plus ``port`` (0: a free one), ``host`` (a loopback
    name) and ``lifetime`` (the child stops by itself after that many seconds). Bad values raise
    ``ValueError`` naming the parameter before anything starts; a busy port raises ``ValueError``
    naming the port.
    """

    def __init__(self, pages: int = 300, *, port: int = 0, host: str = "127.0.0.1",
                 lifetime: float = _DEFAULT_LIFETIME, **spec) -> None:
        self.spec = SiteSpec(pages=pages, **spec)
        self.port = check_int("port", port, 0, 65535)
        if host not in LOOPBACK:
            raise ValueError(f"host must be one of {', '.join(LOOPBACK)} (the site never "
                             f"leaves this machine), got {host!r}")
        self.host = host
        self.lifetime = check_float("lifetime", lifetime, 1.0, 86_400)
        self.sitemap = build_sitemap(self.spec)
        self.report: Served | None = None
        self._proc: subprocess.Popen | None = None
        self._dir: str | None = None
        self._finalizer = None

    @property
    def url(self) -> str:
        if self._proc is None:
            raise RuntimeError("the site is not running: use `with Site(...) as site:`")
        return f"http://{'[::1]' if self.host == '::1' else self.host}:{self.port}"

    @property
    def start_url(self) -> str:
        return self.url + page_path(0)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Site:
        """Start the child and wait until it listens; raise `SiteError` or ``ValueError``."""
        if self._proc is not None:
            raise RuntimeError("the site is already running")
        self._dir = tempfile.mkdtemp(prefix=_FILES_PREFIX)
        ready, log = Path(self._dir, "ready.json"), Path(self._dir, "log.txt")
        argv = [sys.executable, "-m", __name__, "--host", self.host, "--port", str(self.port),
                "--ready-file", str(ready), "--report-file", str(Path(self._dir, "report.json")),
                "--parent-pid", str(os.getpid()), "--lifetime", str(self.lifetime)]
        for name, value in asdict(self.spec).items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parents[3]), os.environ.get("PYTHONPATH"))
            if p))
        with open(log, "wb") as log_file:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                          stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True)
        # If this object is dropped or Python exits without stop(), the child still goes, and
        # so do its files (the log, the ready and report files).
        self._finalizer = weakref.finalize(self, _kill_and_remove, self._proc, self._dir)
        try:
            info = self._wait_ready(ready, log)
        except BaseException:  # KeyboardInterrupt included: no child outlives a failed start
            self.stop()
            raise
        self.port = info["port"]
        return self

    def _wait_ready(self, ready: Path, log: Path) -> dict:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if ready.exists():
                info = json.loads(ready.read_text())
                if "error" in info:
                    raise ValueError(info["error"])
                return info
            if self._proc.poll() is not None:
                raise SiteError(f"the site's process exited with code {self._proc.returncode} "
                                f"before it listened:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(_POLL)
        raise SiteError(f"the site did not start within {_START_TIMEOUT:g} s")

    def served(self, timeout: float = 5.0, *, reset_peak: bool = False) -> Served:
        """What the site has served so far (asked over HTTP: exact at the moment of asking).

        With ``reset_peak=True`` the site then starts counting its ``peak_in_flight`` afresh, so a
        later report tells the most requests it served at once since this one.
        """
        timeout = check_float("timeout", timeout, 0.01, 600.0)
        if not isinstance(reset_peak, bool):
            raise TypeError(f"reset_peak must be True or False, got {reset_peak!r}")
        query = "?reset_peak" if reset_peak else ""
        with urllib.request.urlopen(self.url + "/_served" + query, timeout=timeout) as reply:
            return Served(**json.loads(reply.read()))

    def stop(self) -> Served | None:
        """Stop the child (SIGTERM, then SIGKILL), reap it, and return its final `Served` report.

        Safe to call twice, and after the child died; the report is also kept in `report`.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return self.report
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    _kill(proc)
            report = Path(self._dir, "report.json")
            if report.exists():
                self.report = Served(**json.loads(report.read_text()))
        finally:
            _kill(proc)  # a no-op when it has exited; reaps it in every case
            if self._finalizer is not None:
                self._finalizer.detach()
            shutil.rmtree(self._dir, ignore_errors=True)
        return self.report


if __name__ == "__main__":
    sys.exit(main())
