"""Checks for chapter 06 (the crawler).

- 06.1 bounds the requests in flight *per host*. The answer is the path of a module the reader
  wrote (``%%writefile {SCRATCH}/host_limit.py``) defining ``HostLimiter(per_host)`` with a method
  ``slot(url)``, a context manager that every request of the crawler runs inside. The check
  starts two local sites and crawls both at once in one patched child, through one limiter::

      kernel: check("06.1", f"{SCRATCH}/host_limit.py")
        ├─ Site A, Site B (two ports of 127.0.0.1: two hosts, as urlsplit(url).netloc tells)
        └─ run_patched(run_limited, path, [A, B]) ──► child: import the module by path,
              two crawl_gevent(..., limiter=counting(HostLimiter(3))) side by side
           ◄── per host: most requests in flight at once; both at once; the crawl results

  and says what is right or wrong: too many at once on a host, too few (one limit shared by all
  hosts), a slot never given back (the crawl stalls), every page fetched once.
- 06.2 predicts the least time a crawl can take: the answer is ``{"pool 10": seconds,
  "pool 100": seconds}`` for the site of `PREDICT_PAGES` pages of `PREDICT_LATENCY` s each,
  checked against ``max(ceil(pages / pool), depth) × latency`` from its sitemap.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import Point, exercise

__all__ = ["PREDICT_LATENCY", "PREDICT_PAGES", "run_limited", "scratch_dir"]

PER_HOST = 3  # the limit the check asks for
POOL = 20  # each crawl's pool: far above the limit, so only the limiter can hold it back
PAGES, LATENCY = 40, 0.05  # each site: 40 pages of 50 ms, about 1 s of crawling at 3 per host
# The child gets this long: a right answer needs about 1 s; a slot never released stalls the
# crawl, and the check says so instead of waiting.
_CHILD_SECONDS = 20.0
_CRAWL_SECONDS = 5.0
# 06.2: the site to reason about (the default seed), and the pool sizes asked about.
PREDICT_PAGES, PREDICT_LATENCY = 120, 0.05
_PREDICT_POOLS = (10, 100)
# 06.2: a prediction within 15 % of the bound counts: the reasoning matters, not the digits.
_PREDICT_TOLERANCE = 0.15


def scratch_dir() -> str:
    """A folder outside the course's files for the modules a reader writes (made if missing)."""
    path = os.path.join(tempfile.gettempdir(), "cores-coroutines-ch06")
    os.makedirs(path, exist_ok=True)
    return path


class _Counting:
    """Wraps the reader's limiter: counts requests inside its slots, per host and in total."""

    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, url: str):
        host = urlsplit(url).netloc
        with self.limiter.slot(url):
            with self._lock:
                self.now[host] = self.now.get(host, 0) + 1
                self.peak[host] = max(self.peak.get(host, 0), self.now[host])
                self.peak_total = max(self.peak_total, sum(self.now.values()))
            try:
                yield
            finally:
                with self._lock:
                    self.now[host] -= 1


def run_limited(module_path: str, start_urls: list[str], pool: int, per_host: int) -> dict:
    """In a patched child: crawl every start URL at once through one ``HostLimiter(per_host)``."""
    from ..course import check_int

    check_int("pool", pool, 1, 1_000)
    check_int("per_host", per_host, 1, 1_000)
    if not isinstance(start_urls, (list, tuple)) or not start_urls or not all(
            isinstance(u, str) for u in start_urls):
        raise ValueError(f"start_urls must be a non-empty list of URLs, got {start_urls!r}")
    import gevent

    from ..chapters.ch06_crawler.crawler import crawl_gevent

    spec = importlib.util.spec_from_file_location("cc_reader_host_limit", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counting = _Counting(module.HostLimiter(per_host))
    crawls = [gevent.spawn(crawl_gevent, url, pool, limiter=counting, request_timeout=2.0,
                           time_limit=_CRAWL_SECONDS) for url in start_urls]
    gevent.joinall(crawls, raise_error=True)
    return {"results": [c.value.value for c in crawls], "peak": counting.peak,
            "peak_total": counting.peak_total}


def _load_error(path: Path) -> str | None:
    try:
        source = path.read_text()
    except OSError as exc:
        return f"cannot read {path}: {exc}"
    if "class HostLimiter" not in source:
        return f"{path} should define a class HostLimiter"
    return None


@exercise("06.1", "A per-host limit on requests in flight")
def _per_host(answer):
    from ..chapters.ch06_crawler.crawler import verify
    from ..chapters.ch06_crawler.site import Site
    from ..runners import PatchedChildError, PatchedTimeout, run_patched

    if not isinstance(answer, (str, Path)):
        yield Point(False, "answer should be the path of your module, such as "
                           "f\"{SCRATCH}/host_limit.py\" (the name after %%writefile)")
        return
    path = Path(answer).resolve()
    problem = _load_error(path)
    if problem:
        yield Point(False, problem)
        return
    with Site(PAGES, latency=LATENCY) as a, Site(PAGES, latency=LATENCY, seed=7) as b:
        try:
            run = run_patched(run_limited, str(path), [a.start_url, b.start_url], POOL,
                              PER_HOST, trace=False, timeout=_CHILD_SECONDS)
        except PatchedTimeout:
            yield Point(False, "the crawl stalled: does slot() give the host's place back when "
                               "a request ends, even when it fails (try/finally, or `with`)?")
            return
        except PatchedChildError as exc:
            last = exc.child_traceback.strip().splitlines()[-1:] or ["(no traceback)"]
            yield Point(False, f"your module raised in the crawl: {last[0]}")
            return
        served = {a.url: a.served(), b.url: b.served()}
        sitemaps = {a.url: a.sitemap, b.url: b.sitemap}
    value = run.value
    if any(r.unfinished or r.seconds >= _CRAWL_SECONDS for r in value["results"]):
        yield Point(False, f"the crawl stalled (it stopped after {_CRAWL_SECONDS:g} s with pages "
                           "left): does slot() give the host's place back when a request ends, "
                           "even when it fails (try/finally, or `with`)?")
        return
    for url, result in zip(served, value["results"]):
        host = urlsplit(url).netloc
        peak = value["peak"].get(host, 0)
        if peak > PER_HOST:
            yield Point(False, f"{host} had {peak} requests in flight at once: more than "
                               f"per_host={PER_HOST}")
        elif peak < PER_HOST:
            yield Point(False, f"{host} never had more than {peak} request(s) in flight: the "
                               f"limit should let {PER_HOST} run there at once")
        else:
            yield Point(True, f"{host}: at most {PER_HOST} requests in flight, and that many "
                              "were used")
        checks = verify(result, served[url], sitemaps[url])
        yield Point(all(checks.values()), f"{host}: every page fetched once, no failure"
                    if all(checks.values()) else f"{host}: the crawl is not right: " + ", ".join(
                        name for name, ok in checks.items() if not ok))
    if value["peak_total"] >= 2 * PER_HOST:
        yield Point(True, "both hosts were crawled at full speed at the same time: one limit "
                          "per host")
    else:
        yield Point(False, f"at most {value['peak_total']} requests were in flight over both "
                           "hosts together: is one limit shared by every host? Key it by "
                           "urlsplit(url).netloc")


@exercise("06.2", "The least time a crawl can take")
def _predict(answer):
    import math

    from ..chapters.ch06_crawler.sitemap import SiteSpec, build_sitemap

    keys = [f"pool {size}" for size in _PREDICT_POOLS]
    if not isinstance(answer, dict) or set(keys) - set(answer):
        yield Point(False, f"answer should be a dict with keys {keys}")
        return
    sitemap = build_sitemap(SiteSpec(pages=PREDICT_PAGES, latency=PREDICT_LATENCY))
    depth = sitemap.depth()
    for size, key in zip(_PREDICT_POOLS, keys):
        said = answer[key]
        if isinstance(said, bool) or not isinstance(said, (int, float)):
            yield Point(False, f"'{key}' should be a number of seconds, got {said!r}")
            continue
        by_pool = math.ceil(PREDICT_PAGES / size)
        bound = max(by_pool, depth) * PREDICT_LATENCY
        if abs(said - bound) <= _PREDICT_TOLERANCE * bound:
            limit = "the pool" if by_pool >= depth else "the depth of the site"
            yield Point(True, f"{key}: {bound:.2f} s — here {limit} sets the number of rounds")
        elif abs(said - sitemap.serial_seconds()) <= _PREDICT_TOLERANCE * sitemap.serial_seconds():
            yield Point(False, f"{key}: that is the serial time; {size} requests are in flight "
                               "at once")
        elif by_pool < depth and said <= by_pool * PREDICT_LATENCY * (1 + _PREDICT_TOLERANCE):
            yield Point(False, f"{key}: pages / pool is not the limit here: a page cannot be "
                               "fetched before a link to it has been read (how many rounds deep "
                               "is the site?)")
        elif by_pool > depth and said <= depth * PREDICT_LATENCY * (1 + _PREDICT_TOLERANCE):
            yield Point(False, f"{key}: the site is that deep, but only {size} requests run at "
                               "once: how many rounds do all the pages need?")
        else:
            yield Point(False, f"{key}: {said!r} s is not it: count the rounds of requests, "
                               "each one latency long")
