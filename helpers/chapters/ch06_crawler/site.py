"""The local site a crawler crawls, from the kernel's side: a handle on the child that serves it.

From a notebook, always inside ``with`` (the child is stopped and reaped however the block ends)::

    notebook kernel                                 child: python -m ….site_server (SessionChild)
    ---------------                                 ----------------------------------------------
    with Site(pages=300, latency=0.05) as site: ──► bind 127.0.0.1:<free port>, write the ready file
        crawl(site.start_url)   ── HTTP GET ──────► site_app.SiteApp under gevent's WSGI server
        site.served()           ── GET /_served ──► what it answered so far, per path (JSON);
                                   ?reset_peak: the most at once is counted afresh from then on
    site.report  ◄── report file, written at stop ─ SIGTERM: stop serving, write the report, exit

The three roles live in three modules: `site_app` (the WSGI application and `Served`),
`site_server` (the child: the server, its watcher and its command line) and this one (the
parent's `Site`). The child runs as the course's `helpers.runners.session.SessionChild`: its own
session and folder, a finalizer that kills its group and removes the folder if the handle is
dropped, bounded waits, and a stop that turns into a kill when the time is up.

From a terminal (a teacher's demo; Ctrl-C stops it)::

    python -m helpers.chapters.ch06_crawler.site --port 8000 --pages 300 --latency 0.05
    curl -i http://127.0.0.1:8000/page/0          # a page, with its links
    curl http://127.0.0.1:8000/_served            # what the site served, as JSON

Every response carries ``Connection: close``, so one connection is one request and `capacity`
bounds requests in flight. The child also stops by itself when the process that started it is
gone, or after `lifetime`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
from dataclasses import asdict

from ...course import LOOPBACK, check_float, check_int, check_loopback_host
from ...runners.session import SessionChild
from .site_app import Served
from .site_server import FILES_PREFIX, main
from .sitemap import SiteSpec, build_sitemap, page_path

__all__ = ["Served", "Site", "SiteError"]

# A site started from Python stops by itself after this long even if nobody stops it (a kernel
# killed with -9 cannot run its clean-up): long enough for any chapter, short for a forgotten one.
_DEFAULT_LIFETIME = 900.0
# A site lives at most a day (from Python or a terminal).
_MAX_LIFETIME = 86_400.0
# Waiting for the child to bind: Python and gevent start in well under a second; a loaded 2-core
# machine may take a few.
_START_TIMEOUT = 20.0
# After SIGTERM the child gets this long to stop (it gives hung requests 0.5 s), then SIGKILL.
_STOP_TIMEOUT = 5.0
_SERVER_MODULE = "helpers.chapters.ch06_crawler.site_server"
# How much of the child's log an error quotes.
_LOG_TAIL = 2000


class SiteError(RuntimeError):
    """The site's child process failed to start or died: the message holds its own words."""


class Site:
    """The local site, served by a child process while the ``with`` block runs.

    >>> with Site(pages=50, latency=0.01) as site:          # doctest: +SKIP
    ...     site.start_url, len(site.sitemap.reachable())
    ('http://127.0.0.1:41873/page/0', 50)

    Parameters are those of `SiteSpec` plus ``port`` (0: a free one), ``host`` (a loopback
    address) and ``lifetime`` (the child stops by itself after that many seconds). Bad values
    raise ``ValueError`` naming the parameter before anything starts; a busy port raises
    ``ValueError`` naming the port.
    """

    def __init__(self, pages: int = 300, *, port: int = 0, host: str = LOOPBACK,
                 lifetime: float = _DEFAULT_LIFETIME, **spec) -> None:
        self.spec = SiteSpec(pages=pages, **spec)
        self.port = check_int("port", port, 0, 65535)
        self.host = check_loopback_host("host", host)  # the site never leaves this machine
        self.lifetime = check_float("lifetime", lifetime, 1.0, _MAX_LIFETIME)
        self.sitemap = build_sitemap(self.spec)
        self.report: Served | None = None
        self._child: SessionChild | None = None

    @property
    def url(self) -> str:
        if self._child is None:
            raise RuntimeError("the site is not running: use `with Site(...) as site:`")
        return f"http://{'[::1]' if self.host == '::1' else self.host}:{self.port}"

    @property
    def start_url(self) -> str:
        return self.url + page_path(0)

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.pid

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Site:
        """Start the child and wait until it listens; raise `SiteError` or ``ValueError``."""
        if self._child is not None:
            raise RuntimeError("the site is already running")
        # If this object is dropped or Python exits without stop(), the child still goes, and
        # so do its files (the log, the ready and report files): the SessionChild's finalizer.
        child = SessionChild(prefix=FILES_PREFIX)
        argv = ["--host", self.host, "--port", str(self.port),
                "--ready-file", child.path("ready.json"),
                "--report-file", child.path("report.json"),
                "--parent-pid", str(os.getpid()), "--lifetime", str(self.lifetime)]
        for name, value in asdict(self.spec).items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        try:
            self._child = child.start(_SERVER_MODULE, argv)
            info = self._wait_ready(child)
        except BaseException:  # KeyboardInterrupt included: no child outlives a failed start
            self.stop()
            child.close()
            raise
        self.port = info["port"]
        return self

    def _wait_ready(self, child: SessionChild) -> dict:
        ready = child.path("ready.json")
        if not child.wait_for_file(ready, _START_TIMEOUT):
            if child.alive:
                raise SiteError(f"the site did not start within {_START_TIMEOUT:g} s")
            raise SiteError(f"the site's process exited with code {child.returncode} before it "
                            f"listened:\n{child.output()[-_LOG_TAIL:]}")
        with open(ready) as ready_file:
            info = json.load(ready_file)
        if "error" in info:
            raise ValueError(info["error"])
        return info

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
        child, self._child = self._child, None
        if child is None:
            return self.report
        try:
            child.stop(_STOP_TIMEOUT, signal.SIGTERM)
            report = child.path("report.json")
            if os.path.exists(report):
                with open(report) as report_file:
                    self.report = Served(**json.load(report_file))
        finally:
            child.close()  # kills what is left of its group, reaps it, removes its files
        return self.report


if __name__ == "__main__":  # the command line lives with the server: `site_server.main`
    sys.exit(main())
