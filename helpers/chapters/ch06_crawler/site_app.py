"""The local site's WSGI application: answers from the sitemap, counts what it served.

It runs in the site's child (`site_server`), under gevent's WSGI server::

    GET /page/N ──► SiteApp: the page's outcome for this attempt (200, 500, 404, reset, hang),
                    after the page's latency (gevent.sleep: cooperative) ──► Served.by_path[path]
    GET /_served ─► the Served record as JSON (?reset_peak: the most at once counted afresh)

A "reset" outcome raises `Reset`; the handler of `reset_handler_class` turns it into a TCP reset,
as from a crashed server. `Served` is what the kernel's `site.Site` reads back.
"""

from __future__ import annotations

import errno
import json
import socket
import struct
from dataclasses import asdict, dataclass, field

from .sitemap import Sitemap, page_path

__all__ = ["Reset", "Served", "SiteApp", "reset_handler_class"]

_FILLER = "All work and no play makes a crawler a dull program. "  # page padding, to reach `size`


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


class Reset(Exception):
    """Raised by the application to make the handler reset the connection."""


class SiteApp:
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
                raise Reset(path)
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


def reset_handler_class():
    """gevent's WSGI handler, made to answer `Reset` with a TCP reset (imported when called)."""
    from gevent.pywsgi import WSGIHandler

    class _Handler(WSGIHandler):
        def run_application(self):
            try:
                super().run_application()
            except Reset:
                # Linger 0: close() sends a TCP RST instead of a FIN, so the client sees
                # "connection reset by peer" mid-request, as from a crashed server.
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                raise OSError(errno.ECONNRESET, "reset on purpose") from None  # closed quietly

    return _Handler


