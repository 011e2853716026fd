"""The local site's content, drawn from a seed: pages, links, latencies and faults (no server here).

The same `SiteSpec` builds the same `Sitemap` in the server process and in the notebook, so the
notebook knows, without asking the server, which pages a crawler can reach and how long a serial
crawl must take::

    SiteSpec(pages=300, seed=6, latency="exponential", ...)
        │  build_sitemap(spec): random.Random(seed) draws, in a fixed order,
        ▼
    Sitemap.pages[i] = Page(path="/page/i", links=(...), latency=0.043, fault=None | "500" | ...)
        │                                   │
        ▼                                   ▼
    the server (site.py) answers from it    sitemap.reachable(retries) -> the pages a correct
                                            crawler fetches: the answer a crawl is checked against

Faults, and what a client sees:

- ``"500"``: the page answers HTTP 500. Half of these pages are *transient* (the first request
  fails, every later one succeeds: a retry fixes it), half *permanent* (every request fails);
- ``"reset"``: the server resets the TCP connection after the page's latency; transient or
  permanent like ``"500"``;
- ``"hang"``: the server holds the request for `SiteSpec.hang` seconds (longer than any sensible
  client timeout) before it answers: the client's timeout is what ends the wait;
- ``"404"``: a link to a page that is not there (HTTP 404). Retrying never helps.

Page 0 is the start page: it never has a fault, so every crawl gets going.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from ...course import check_choice, check_float, check_int

__all__ = ["FAULTS", "LATENCIES", "Page", "SiteSpec", "Sitemap", "build_sitemap", "page_path"]

LATENCIES = ("fixed", "exponential", "slow tail")
FAULTS = ("500", "reset", "hang", "404")
# A slow tail: this share of pages takes _TAIL_FACTOR times the typical latency (the rest take the
# typical latency exactly), which is how a cache miss or a slow database query looks to a client.
_TAIL_SHARE = 0.05
_TAIL_FACTOR = 20.0
# Exponential latencies are capped at this many means, so one unlucky draw cannot make a demo
# cell run for a minute (the cap moves the mean by less than 0.01 %).
_EXPONENTIAL_CAP = 10.0
# Bounds of every parameter: wide enough for any demo, narrow enough that a typo (latency=50 for
# 50 ms) is an error instead of a site that takes hours to crawl.
MAX_PAGES = 20_000
MAX_LATENCY = 5.0
MAX_SIZE = 1_000_000
MAX_LINKS = 50
MAX_CAPACITY = 10_000
MAX_HANG = 600.0


def page_path(index: int) -> str:
    """The URL path of page `index`."""
    return f"/page/{check_int('index', index, 0, MAX_PAGES - 1)}"


@dataclass(frozen=True)
class SiteSpec:
    """Everything the site is made from. The same spec (and seed) always makes the same site.

    ``latency`` is the typical time a page takes to answer, in seconds; ``distribution`` says how
    pages vary around it (see `LATENCIES`). ``size`` is each page's body in bytes, ``links`` how
    many links each page has, ``failure_rate`` the share of pages with a fault (spread evenly over
    `FAULTS`), ``capacity`` how many connections the server handles at once (more wait in the
    listen queue), ``hang`` how long a hanging page holds a request.
    """

    pages: int = 300
    latency: float = 0.05
    distribution: str = "fixed"
    size: int = 2_000
    links: int = 4
    failure_rate: float = 0.0
    capacity: int = 1_000
    hang: float = 30.0
    seed: int = 6

    def __post_init__(self) -> None:
        check_int("pages", self.pages, 1, MAX_PAGES)
        check_float("latency", self.latency, 0.0, MAX_LATENCY)
        check_choice("distribution", self.distribution, LATENCIES)
        check_int("size", self.size, 0, MAX_SIZE)
        check_int("links", self.links, 1, MAX_LINKS)
        check_float("failure_rate", self.failure_rate, 0.0, 0.5)
        check_int("capacity", self.capacity, 1, MAX_CAPACITY)
        check_float("hang", self.hang, 0.0, MAX_HANG)
        check_int("seed", self.seed, 0, 2**32 - 1)


@dataclass(frozen=True)
class Page:
    """One page: where it links, how long it takes, how it fails (``fault`` None: it never does).

    ``fails`` is how many requests fail before the page answers normally: 1 for a transient
    fault, 0 for none, and -1 for "every request".
    """

    index: int
    links: tuple[int, ...]
    latency: float
    fault: str | None = None
    fails: int = 0

    @property
    def path(self) -> str:
        return page_path(self.index)

    def outcome(self, attempt: int) -> str:
        """What request number `attempt` (1 for the first) of this page gets: "200" or a fault."""
        if self.fault is None:
            return "200"
        if self.fails < 0 or attempt <= self.fails:
            return self.fault
        return "200"


@dataclass(frozen=True)
class Sitemap:
    """The whole site: `pages[i]` is page i; page 0 is the start page."""

    spec: SiteSpec
    pages: tuple[Page, ...] = field(repr=False)

    def page(self, path: str) -> Page | None:
        """The page at `path` (like ``"/page/7"``), or None if there is none."""
        prefix = "/page/"
        if not path.startswith(prefix) or not path[len(prefix):].isdigit():
            return None
        index = int(path[len(prefix):])
        return self.pages[index] if index < len(self.pages) else None

    def reachable(self, retries: int = 2) -> dict[str, str]:
        """``{path: outcome}`` for every page a correct crawler reaches from page 0.

        A crawler that retries failed requests `retries` times gets every transient fault's page
        (if `retries` ≥ 1) and follows its links; a permanent fault, a hang or a 404 ends the
        path there. The outcome is "200" or the fault the crawler finally reports.
        """
        check_int("retries", retries, 0, 10)
        outcome: dict[str, str] = {}
        queue = deque([0])
        seen = {0}
        while queue:
            page = self.pages[queue.popleft()]
            retried = "404" != page.fault  # 404 is final: a crawler does not retry it
            final = page.outcome(1 + retries if retried else 1)
            outcome[page.path] = final
            if final != "200":
                continue
            for target in page.links:
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
        return outcome

    def depth(self, retries: int = 2) -> int:
        """How many rounds of requests a crawl needs however many run at once: the start page,
        then every page it links to, and so on (the deepest page's distance from page 0, plus 1).
        A crawl cannot ask for a page before it has read a link to it."""
        reachable = self.reachable(retries)
        level, frontier, seen = 0, [0], {0}
        while frontier:
            level += 1
            nxt = []
            for index in frontier:
                page = self.pages[index]
                if reachable.get(page.path) == "200":
                    for target in page.links:
                        if target not in seen:
                            seen.add(target)
                            nxt.append(target)
            frontier = nxt
        return level

    def serial_seconds(self, retries: int = 2, backoff: float = 0.0, timeout: float = 0.0) -> float:
        """How long a serial crawl waits: every attempt's latency (a hang's: the client `timeout`)
        plus the backoff before each retry (``backoff × 2**k`` before retry k+1)."""
        total = 0.0
        for path in self.reachable(retries):
            page = self.page(path)
            if page.fault in ("500", "reset", "hang"):
                tries = 1 + (min(retries, page.fails) if page.fails > 0 else retries)
                wait = timeout if page.fault == "hang" else page.latency
                total += tries * wait + sum(backoff * 2**k for k in range(tries - 1))
            else:
                total += page.latency
        return total


def _latency(rng: random.Random, spec: SiteSpec) -> float:
    if spec.distribution == "fixed":
        return spec.latency
    if spec.distribution == "exponential":
        if spec.latency == 0:
            return 0.0
        return min(rng.expovariate(1 / spec.latency), _EXPONENTIAL_CAP * spec.latency)
    return spec.latency * (_TAIL_FACTOR if rng.random() < _TAIL_SHARE else 1.0)


def build_sitemap(spec: SiteSpec) -> Sitemap:
    """Draw the site of `spec`: a random tree from page 0 (so every page is linked from somewhere),
    then random extra links until a page has ``spec.links`` (a page with more children in the
    tree keeps them all; a repeated draw is skipped, so a few pages end up with fewer)."""
    rng = random.Random(spec.seed)
    n = spec.pages
    links: list[list[int]] = [[] for _ in range(n)]
    for child in range(1, n):  # a random recursive tree: page i is linked from an earlier page
        links[rng.randrange(child)].append(child)
    for index in range(n):
        extra = [rng.randrange(n) for _ in range(spec.links)]
        for target in extra:
            if len(links[index]) >= spec.links:
                break
            if target != index and target not in links[index]:
                links[index].append(target)
    pages = []
    for index in range(n):
        latency = _latency(rng, spec)
        faulty = index > 0 and rng.random() < spec.failure_rate
        fault = FAULTS[rng.randrange(len(FAULTS))] if faulty else None
        transient = rng.random() < 0.5
        fails = 0 if fault is None else (1 if transient and fault in ("500", "reset") else -1)
        pages.append(Page(index, tuple(links[index]), latency, fault, fails))
    return Sitemap(spec, tuple(pages))
