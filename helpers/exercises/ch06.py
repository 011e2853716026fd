"""Checks for chapter 06 (the crawler).

- 06.1 bounds the requests in flight *per host*. The answer is the path of a module the reader
  wrote (``%%writefile {WORK}/host_limit.py``, ``WORK = work_folder("ch06")``) defining
  ``HostLimiter(per_host)`` with a method ``slot(url)``, a context manager that every request of
  the crawler runs inside. The check starts two local sites and crawls both at once in one
  patched child, through one limiter::

      kernel: check("06.1", f"{WORK}/host_limit.py")
        ├─ Site A, Site B (two ports of 127.0.0.1: two hosts, as urlsplit(url).netloc tells)
        └─ run_patched(run_limited, path, [A, B]) ──► child: import the module by path,
              two crawl_gevent(..., limiter=counting(HostLimiter(3))) side by side
           ◄── per host: most requests in flight at once; both at once; the crawl results

  and says what is right or wrong: too many at once on a host, too few (one limit shared by all
  hosts), a slot never given back (the crawl stalls), every page fetched once.
- 06.2 reasons backwards from the bound on a crawl's time, ``max(ceil(pages / pool), depth) ×
  latency``: the answer is ``{"pool": n, "seconds": t}``, the smallest pool with which the bound
  is as low as any pool makes it, and that least time, for the site of `PREDICT_PAGES` pages of
  `PREDICT_LATENCY` s each. Right: ``n = ceil(pages / depth)`` (one fewer and the pool needs one
  round more than the depth), ``t = depth × latency``.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import Point, exercise

__all__ = ["PREDICT_LATENCY", "PREDICT_PAGES", "run_limited"]

PER_HOST = 3  # the limit the check asks for
POOL = 20  # each crawl's pool: far above the limit, so only the limiter can hold it back
PAGES, LATENCY = 40, 0.05  # each site: 40 pages of 50 ms, about 1 s of crawling at 3 per host
# The child gets this long: a right answer needs about 1 s; a slot never released stalls the
# crawl, and the check says so instead of waiting.
_CHILD_SECONDS = 20.0
_CRAWL_SECONDS = 5.0
# 06.2: the site to reason about (the default seed: 6 rounds deep, so the answer is a pool of 20).
PREDICT_PAGES, PREDICT_LATENCY = 120, 0.05
# 06.2: a least time within 5 % counts (rounding); the pool must be exact: it is a count.
_PREDICT_TOLERANCE = 0.05


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
                           "f\"{WORK}/host_limit.py\" (the name after %%writefile)")
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


def _rounds(pages: int, pool: int, depth: int) -> int:
    """The bound's rounds: the pool's limit or the depth, whichever is larger."""
    return max(math.ceil(pages / pool), depth)


@exercise("06.2", "The smallest pool that reaches the least time")
def _smallest_pool(answer):
    from ..chapters.ch06_crawler.sitemap import SiteSpec, build_sitemap

    if not isinstance(answer, dict) or {"pool", "seconds"} - set(answer):
        yield Point(False, 'answer should be a dict {"pool": a number of greenlets, '
                           '"seconds": the least time}')
        return
    pool, seconds = answer["pool"], answer["seconds"]
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        yield Point(False, f"'pool' should be a whole number of greenlets (1 or more), "
                           f"got {pool!r}")
        return
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        yield Point(False, f"'seconds' should be a number of seconds, got {seconds!r}")
        return
    sitemap = build_sitemap(SiteSpec(pages=PREDICT_PAGES, latency=PREDICT_LATENCY))
    depth = sitemap.depth()
    least = depth * PREDICT_LATENCY
    smallest = math.ceil(PREDICT_PAGES / depth)
    if abs(seconds - least) <= _PREDICT_TOLERANCE * least:
        yield Point(True, f"seconds: {least:.2f} s, {depth} rounds of {PREDICT_LATENCY} s: the "
                          "depth of the site, which no pool size shortens")
    elif abs(seconds - sitemap.serial_seconds()) <= _PREDICT_TOLERANCE * sitemap.serial_seconds():
        yield Point(False, "seconds: that is the serial time; with a large pool, what is left "
                           "of the bound?")
    else:
        yield Point(False, f"seconds: {seconds!r} s is not it: with a pool as large as you like, "
                           "how many rounds of requests does the crawl still need?")
    rounds = _rounds(PREDICT_PAGES, pool, depth)
    if pool == smallest:
        yield Point(True, f"pool: {pool} — {PREDICT_PAGES} pages in rounds of {pool} take "
                          f"{rounds} rounds, no more than the depth; with {pool - 1} they would "
                          f"take {_rounds(PREDICT_PAGES, pool - 1, depth)}")
    elif pool < smallest:
        yield Point(False, f"pool: with {pool}, {PREDICT_PAGES} pages need "
                           f"{math.ceil(PREDICT_PAGES / pool)} rounds of {pool}: more than the "
                           f"{depth} rounds of the site's depth")
    else:
        yield Point(False, f"pool: {pool} reaches the least time, but so does a smaller pool: "
                           "which is the smallest whose rounds of pages fit in the depth?")
