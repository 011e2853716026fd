"""A real crawler on gevent: frontier queue, visited set, a bounded Pool, timeouts and retries.

Run it in a patched child (``run_patched(crawl_gevent, site.start_url, 50)``): the HTTP client is
urllib3, a blocking library, made cooperative by monkey patching::

    frontier: gevent.queue.Queue                 pool: gevent.pool.Pool(concurrency)
    ┌──────────────────────┐  main greenlet       ┌───────────────────────────────────────┐
    │ /page/0  /page/7 ... │ ── get() ──────────► │ spawn(visit, path)   waits for a slot  │
    └──────────────────────┘                      │  fetch: GET with a timeout; on 5xx,    │
              ▲                                   │  reset or timeout, back off and retry  │
              └── new links: each path enters ────│  parse the links of a 200 page         │
                  once (CrawlState's visited set) └───────────────────────────────────────┘
    done when no path is queued or in flight (the last visit puts a STOP on the queue)

The page shows the lesson's part: `fetch_once` (one GET), `fetch_with_retries` (timeouts,
retries with backoff) and `crawl_gevent` (the frontier and the pool). `CrawlState` keeps the
bookkeeping behind them (visited set, outcomes, lanes, time limit, timeline spans) and `new_crawl`
checks the parameters; the threads, asyncio and serial crawlers in `models` share both, so all
four crawl exactly alike. The result is a `CrawlResult`; `verify` compares it with what the site
says it served.

Timeline spans, one lane per worker slot (the lowest free one when the visit began, as a pool
fills its slots), coloured by the kind in `SPAN_KINDS`. The kinds are the course timeline's
colours, borrowed: here they mean outcomes (a 200 answer ``io``, a failed attempt ``lock``, the
pause before a retry ``wait``, a 404 ``send``), not chapter 03's locks and sends; the plot's
legend names them by outcome.
"""

from __future__ import annotations

import heapq
import re
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ...course import (
    MAX_TIMEOUT_SECONDS,
    check_callable,
    check_float,
    check_int,
    check_loopback_host,
)
from ...timeline import Event, Trace, TracedResult

__all__ = [
    "MAX_CONCURRENCY",
    "RETRIED",
    "SPAN_KINDS",
    "CrawlResult",
    "CrawlState",
    "RetryPolicy",
    "crawl_gevent",
    "crawl_patched_late",
    "fetch_once",
    "fetch_with_retries",
    "links_in",
    "new_crawl",
    "verify",
    "write_editable_copy",
]

# Up to this many requests in flight: far beyond what one loopback site needs to show its limit,
# and within the open-file limits the site and the client raise themselves to.
MAX_CONCURRENCY = 5_000
MAX_PAGES = 20_000  # the site's own bound
# Outcomes worth another try: the server may answer next time. A 404 will not change, and a
# refused connection means nothing listens there any more.
RETRIED = ("500", "reset", "timeout")
# One timeline kind per outcome (the legend of `views.plot_requests` names them by outcome).
SPAN_KINDS = {"200": "io", "404": "send", "500": "lock", "reset": "lock", "timeout": "lock",
              "refused": "lock", "backoff": "wait"}
# Links are found with one regular expression: the site writes every link the same way, so an
# HTML parser would only add CPU per page (a crawler of other people's pages needs one).
_LINK = re.compile(rb'<a href="(/page/\d+)"')
STOP = None  # put on a frontier when nothing is queued or in flight: the crawl is done


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a crawler tries: ``request_timeout`` per request (s), ``retries`` after the first
    try, ``backoff`` before the first retry (s), doubled before each next one."""

    request_timeout: float = 2.0
    retries: int = 2
    backoff: float = 0.05

    def __post_init__(self) -> None:
        check_float("request_timeout", self.request_timeout, 0.01, 60.0)
        check_int("retries", self.retries, 0, 10)
        check_float("backoff", self.backoff, 0.0, 10.0)


@dataclass
class CrawlResult:
    """What a crawl found: per path, its final outcome and how many requests it took."""

    model: str
    concurrency: int
    outcomes: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    peak_in_flight: int = 0
    unfinished: list[str] = field(default_factory=list)  # not crawled: the time limit struck
    notes: list[str] = field(default_factory=list)  # what the crawler was told (warnings)

    @property
    def fetched(self) -> list[str]:
        """The paths answered 200."""
        return [path for path, got in self.outcomes.items() if got == "200"]

    @property
    def failures(self) -> dict[str, str]:
        """``{path: reason}`` for every path that did not end in a 200 answer."""
        return {path: _reason(got, self.attempts[path])
                for path, got in self.outcomes.items() if got != "200"}

    @property
    def requests(self) -> int:
        return sum(self.attempts.values())

    @property
    def pages_per_second(self) -> float:
        return len(self.outcomes) / self.seconds if self.seconds else 0.0


def _reason(outcome: str, attempts: int) -> str:
    what = {"404": "HTTP 404 (not found)", "500": "HTTP 500", "reset": "connection reset",
            "timeout": "timed out", "refused": "connection refused"}.get(outcome, outcome)
    return f"{what} after {attempts} attempt{'s' if attempts > 1 else ''}"


def links_in(body: bytes) -> list[str]:
    """The link targets (paths) in a page."""
    return [m.decode() for m in _LINK.findall(body)]


class CrawlState:
    """The bookkeeping of one crawl, shared by its workers: visited set, outcomes, lanes, spans.

    `admit` is the only way into the crawl: a path is admitted once, so no page is fetched twice
    however many pages link to it. A lock guards the set (threads need it; for greenlets and
    asyncio tasks, which never switch inside it, it is free). Each visit draws in the lane of the
    lowest free worker slot (`started` takes it, `finished` gives it back), as a pool fills its
    slots. The start page is admitted already: it is `first`.
    """

    def __init__(self, start_url: str, max_pages: int = MAX_PAGES,
                 time_limit: float = 60.0) -> None:
        base, _, first = start_url.partition("/page/")
        self.base_url = base.rstrip("/")
        self.first = "/page/" + first
        self.max_pages = check_int("max_pages", max_pages, 1, MAX_PAGES)
        self.visited: set[str] = set()
        self.outcomes: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.in_flight = 0
        self.peak_in_flight = 0
        self.unfinished: list[str] = []  # admitted, but stopped by the time limit
        self._lock = threading.Lock()
        self._spans: list[tuple[str, str, str, int, int]] = []
        self._free_lanes: list[int] = []  # slots given back, lowest first
        self._lanes = 0  # slots ever used
        self._origin = time.perf_counter_ns()
        self._time_limit = check_float("time_limit", time_limit, 0.1, MAX_TIMEOUT_SECONDS)
        self._started: float | None = None  # the crawl's clock: see time_left
        self.admit(self.first)

    def time_left(self) -> float:
        """Seconds until the time limit (0 once it has passed): every wait of a crawl is bounded.

        The first call starts the crawl's clock, so a crawler asks when its loop begins: the
        time it took to make its HTTP client (httpx's loads certificates) is neither spent from
        the limit nor counted in the crawl's time.
        """
        if self._started is None:
            self._started = time.perf_counter()
        return max(0.0, self._started + self._time_limit - time.perf_counter())

    def admit(self, path: str) -> bool:
        """True (once) if `path` is new and the page budget allows it."""
        with self._lock:
            if path in self.visited or len(self.visited) >= self.max_pages:
                return False
            self.visited.add(path)
            return True

    def span(self, lane: str, label: str, outcome: str, start_ns: int, end_ns: int) -> None:
        self._spans.append((lane, label, SPAN_KINDS[outcome], start_ns, end_ns))

    def started(self) -> str:
        """A visit begins: count it in flight; return its lane (the lowest free worker slot)."""
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            if self._free_lanes:
                slot = heapq.heappop(self._free_lanes)
            else:
                slot, self._lanes = self._lanes, self._lanes + 1
            return f"worker {slot}"

    def finished(self, path: str, outcome: str | None, attempts: int, lane: str) -> None:
        """Record `path`'s final outcome; None: stopped before it had one (the time limit)."""
        with self._lock:
            self.in_flight -= 1
            heapq.heappush(self._free_lanes, int(lane.rsplit(" ", 1)[-1]))
            if outcome is None:
                self.unfinished.append(path)
            else:
                self.outcomes[path] = outcome
                self.attempts[path] = attempts

    def skipped(self, path: str) -> None:
        """`path` was admitted but never visited: the time limit struck first."""
        with self._lock:
            self.unfinished.append(path)

    def result(self, model: str, concurrency: int, left: list | None = None) -> TracedResult:
        """The `CrawlResult` (`left`: paths still queued), with one span per attempt and backoff
        in its recording; its time runs from the first `time_left` call to now."""
        import os

        seconds = time.perf_counter() - self._started if self._started is not None else 0.0
        queued = [path for path in left or [] if path is not STOP]
        value = CrawlResult(model, concurrency, dict(self.outcomes), dict(self.attempts),
                            seconds, self.peak_in_flight, sorted({*self.unfinished, *queued}))
        pid = os.getpid()
        events = [Event(lane, label, kind, start, end, pid)
                  for lane, label, kind, start, end in self._spans]
        return TracedResult(value, Trace(events, {pid: (self._origin, time.time_ns())}))


def new_crawl(start_url: str, concurrency: int, request_timeout: float, retries: int,
              backoff: float, max_pages: int, time_limit: float) -> tuple[RetryPolicy, CrawlState]:
    """Check a crawler's parameters; return its retry policy and a fresh `CrawlState`."""
    check_int("concurrency", concurrency, 1, MAX_CONCURRENCY)
    policy = RetryPolicy(request_timeout, retries, backoff)
    check_int("max_pages", max_pages, 1, MAX_PAGES)
    check_float("time_limit", time_limit, 0.1, MAX_TIMEOUT_SECONDS)
    parts = urlsplit(start_url) if isinstance(start_url, str) else None
    if parts is None or parts.scheme != "http" or not parts.hostname or \
            not parts.path.startswith("/page/"):
        raise ValueError(f"start_url must be a page's URL (http://HOST:PORT/page/N), "
                         f"got {start_url!r}")
    # The course's crawlers crawl the course's own site, on this machine, and nothing else.
    check_loopback_host("start_url's host", parts.hostname)
    return policy, CrawlState(start_url, max_pages, time_limit)


def fetch_once(http: Any, url: str, timeout: float) -> tuple[str, bytes]:
    """One GET with urllib3 and no retries of its own: ``(outcome, body)``."""
    import urllib3

    check_float("timeout", timeout, 0.01, 60.0)
    try:
        reply = http.request("GET", url, timeout=urllib3.Timeout(connect=timeout, read=timeout),
                             retries=False, redirect=False)
    except urllib3.exceptions.NewConnectionError:  # before TimeoutError: it is a subclass
        return "refused", b""
    except urllib3.exceptions.TimeoutError:
        return "timeout", b""
    except urllib3.exceptions.ProtocolError:  # the connection was reset or closed mid-request
        return "reset", b""
    return ("500" if reply.status >= 500 else str(reply.status)), reply.data


def fetch_with_retries(state: CrawlState, path: str, policy: RetryPolicy,
                       fetch: Callable[[str], tuple[str, bytes]],
                       sleep: Callable[[float], Any]) -> list[str]:
    """Fetch `path` (retrying per `policy`), record every attempt, return its new links.

    ``fetch(url)`` makes one request; ``sleep(seconds)`` waits before a retry. A visit stopped on
    the way (killed, cancelled, interrupted) leaves `path` unfinished.
    """
    check_callable("fetch", fetch)
    check_callable("sleep", sleep)
    lane = state.started()
    outcome, body, attempt, done = "refused", b"", 0, False
    try:
        for attempt in range(1, policy.retries + 2):
            start = time.perf_counter_ns()
            outcome, body = fetch(state.base_url + path)
            state.span(lane, f"{path} {outcome}", outcome, start, time.perf_counter_ns())
            if outcome not in RETRIED or attempt > policy.retries:
                break  # an answer, a final failure (404, refused), or no tries left
            start = time.perf_counter_ns()
            sleep(policy.backoff * 2 ** (attempt - 1))  # backoff, 2 × backoff, 4 × ...
            state.span(lane, f"{path} backoff", "backoff", start, time.perf_counter_ns())
        done = True
    finally:
        state.finished(path, outcome if done else None, attempt, lane)
    return [link for link in links_in(body) if state.admit(link)] if outcome == "200" else []


def crawl_gevent(start_url: str, concurrency: int = 50, *, request_timeout: float = 2.0,
                 retries: int = 2, backoff: float = 0.05, max_pages: int = MAX_PAGES,
                 time_limit: float = 60.0, limiter: Any = None, sleep: Any = None) -> TracedResult:
    """Crawl from `start_url` with a ``gevent.pool.Pool(concurrency)``; run it patched.

    ``limiter.slot(url)``, if given, is a context manager every request runs inside (exercise
    06.1). ``sleep`` waits before a retry: ``gevent.sleep`` unless given.
    """
    import gevent
    import urllib3
    from gevent.pool import Pool
    from gevent.queue import Empty, Queue

    policy, state = new_crawl(start_url, concurrency, request_timeout, retries, backoff,
                              max_pages, time_limit)  # checks every parameter
    http = urllib3.PoolManager(maxsize=concurrency)  # one connection pool, greenlet-safe
    frontier = Queue(items=[state.first])  # paths admitted (the visited set), not yet visited
    pending = [1]  # paths queued or in flight: the visit that brings it to 0 ends the crawl

    def fetch(url: str) -> tuple[str, bytes]:
        with limiter.slot(url) if limiter else nullcontext():
            return fetch_once(http, url, policy.request_timeout)

    def visit(path: str) -> None:
        try:
            new = fetch_with_retries(state, path, policy, fetch, sleep or gevent.sleep)
            pending[0] += len(new)
            for link in new:
                frontier.put(link)
        finally:
            pending[0] -= 1
            if pending[0] == 0:
                frontier.put(STOP)  # nothing queued, nothing in flight: the crawl is done

    pool = Pool(concurrency)
    try:
        while state.time_left() > 0:
            try:
                path = frontier.get(timeout=state.time_left())
            except Empty:  # the time limit struck while the frontier was empty
                break
            if path is STOP or not pool.wait_available(timeout=state.time_left()):
                frontier.put(path)  # (the time limit struck: the path is reported unfinished)
                break
            pool.spawn(visit, path)  # a slot is free: the visit starts now
        pool.join(timeout=state.time_left() + policy.request_timeout)
    finally:
        pool.kill(timeout=1)  # visits still running past the time limit: stopped, unfinished
        http.clear()
    return state.result("gevent", concurrency, list(frontier.queue))


def crawl_patched_late(start_url: str, concurrency: int = 20, *, request_timeout: float = 2.0,
                       retries: int = 2, backoff: float = 0.2) -> TracedResult:
    """Run in an *unpatched* child: keep a reference to ``time.sleep``, patch, then crawl.

    The reference is what ``from time import sleep`` at the top of a module keeps; the crawler
    backs off with it. The value's ``notes`` hold the warnings gevent gave when patching late.
    """
    import warnings

    from gevent import monkey

    new_crawl(start_url, concurrency, request_timeout, retries, backoff, MAX_PAGES, 60.0)  # checks
    early_sleep = time.sleep  # taken before patch_all(), as an import at the top of a module is
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monkey.patch_all()
    result = crawl_gevent(start_url, concurrency, request_timeout=request_timeout,
                          retries=retries, backoff=backoff, sleep=early_sleep)
    result.value.model = "gevent, patched late"
    result.value.notes = [str(w.message) for w in caught]
    return result


def verify(result: CrawlResult, served, sitemap, retries: int | None = None) -> dict[str, bool]:
    """Compare a crawl with what the site served (`site.Served`) and could serve (`Sitemap`).

    Returns ``{check: passed}`` for: every reachable page fetched, each page requested only as
    often as the crawler says (so a fetched page was answered 200 exactly once), every failure
    reported with the outcome the site gave, and nothing else requested. Pages a time limit left
    unfinished fail the first check only.
    """
    expected = sitemap.reachable(2 if retries is None else check_int("retries", retries, 0, 10))
    left = set(result.unfinished)  # stopped by a time limit: only the first check counts them
    site_said = {path: {"hang": "timeout"}.get(got[-1], got[-1])
                 for path, got in served.by_path.items() if got and path not in left}
    return {
        "every reachable page fetched": set(result.fetched)
        == {p for p, o in expected.items() if o == "200"},
        "each fetched page answered 200 exactly once": all(
            served.outcomes(p).count("200") == 1 for p in result.fetched),
        "requests per page match the site's count": all(
            len(served.outcomes(p)) == n for p, n in result.attempts.items()),
        "every failure reported, with the site's outcome": {
            p: o for p, o in result.outcomes.items() if o != "200"}
        == {p: o for p, o in site_said.items() if o != "200"},
        "no page requested that the crawl does not report": set(served.by_path) - left
        == set(result.outcomes),
    }


# The script `write_editable_copy` writes around crawl_gevent's source: patch first, the names the
# crawler uses, and a main that prints the CrawlResult as JSON for the notebook to check.
_COPY_HEAD = '''"""Your copy of the course's crawl_gevent: change it, save, run the cell again.

It runs as a script, patched first: python my_crawler.py START_URL POOL REQUEST_TIMEOUT
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # first: before anything imports socket, ssl or time

import dataclasses
import json
import sys
from contextlib import nullcontext
from typing import Any

from helpers.chapters.ch06_crawler.crawler import (
    MAX_PAGES,
    STOP,
    fetch_once,
    fetch_with_retries,
    new_crawl,
)
from helpers.timeline import TracedResult


'''
_COPY_TAIL = '''

if __name__ == "__main__":
    run = crawl_gevent(sys.argv[1], int(sys.argv[2]), request_timeout=float(sys.argv[3]))
    print(json.dumps(dataclasses.asdict(run.value)))
'''


def write_editable_copy(path: str, *, replace: bool = False) -> str:
    """Write `crawl_gevent`'s source as a script at `path` (a ``.py`` file) for the reader to edit.

    An existing file is kept (the reader's edits stay) unless `replace`. Returns `path`.
    """
    import inspect
    import os

    if not isinstance(path, (str, os.PathLike)) or not str(path).endswith(".py"):
        raise ValueError(f"path must be the path of a .py file, got {path!r}")
    if replace or not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as out:
            out.write(_COPY_HEAD + inspect.getsource(crawl_gevent) + _COPY_TAIL)
    return str(path)
