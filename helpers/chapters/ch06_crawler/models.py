"""The same crawl, three more ways: serial, a thread pool, asyncio — and what each costs in memory.

Each crawler here shares `crawler.CrawlState` (visited set, outcomes, lanes, clock, spans),
`crawler.new_crawl` (the parameter checks) and the retry policy with `crawler.crawl_gevent`, so
the four differ only in how they wait (and asyncio in its HTTP client: urllib3 has no asyncio
interface). The page shows `crawl_threads`, and for asyncio `crawl_with_tasks`,
`fetch_with_retries_async` and `fetch_async` (`crawl_asyncio` only checks and calls
``asyncio.run``)::

    model     runs in                       bounds concurrency with       HTTP client
    serial    one loop                      (one request at a time)       urllib3
    threads   ThreadPoolExecutor workers    max_workers                   urllib3 (thread-safe pool)
    gevent    greenlets, patched child      gevent.pool.Pool(size)        urllib3, patched
    asyncio   tasks on one event loop       that many worker tasks        httpx.AsyncClient

Each runs in a fresh child (`run_model`; patched only for gevent) so that all four start alike
and none disturbs the kernel (asyncio.run cannot run inside a kernel's own event loop).
`hold_requests` puts `count` requests in flight at once with one model and measures how much
the process grew: memory per concurrent request.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any

from ...course import check_choice, check_float, check_int
from ...timeline import TracedResult
from .crawler import (
    MAX_CONCURRENCY,
    MAX_PAGES,
    RETRIED,
    STOP,
    CrawlState,
    RetryPolicy,
    crawl_gevent,
    fetch_once,
    fetch_with_retries,
    links_in,
    new_crawl,
)
from .limits import raise_open_files_towards

# The coroutine functions (crawl_with_tasks, fetch_with_retries_async, fetch_async) are public
# too, but not listed: a call only makes a coroutine, so they check nothing until awaited; their
# entry point, crawl_asyncio, checks every parameter first.
__all__ = ["MODELS", "crawl_asyncio", "crawl_reporting", "crawl_serial", "crawl_threads",
           "hold_requests", "run_model", "throughput_sweep"]

MODELS = ("serial", "threads", "gevent", "asyncio")  # in the order the chapter shows them
# How often the memory sampler reads the process's resident size: often enough to catch the peak
# of a 1 s hold, rare enough to cost nothing.
_SAMPLE_SECONDS = 0.01


def crawl_serial(start_url: str, concurrency: int = 1, *, request_timeout: float = 2.0,
                 retries: int = 2, backoff: float = 0.05, max_pages: int = MAX_PAGES,
                 time_limit: float = 60.0) -> TracedResult:
    """One request at a time (`concurrency` is ignored); stops starting pages after `time_limit`."""
    import urllib3

    policy, state = new_crawl(start_url, concurrency, request_timeout, retries, backoff,
                              max_pages, time_limit)
    http = urllib3.PoolManager(maxsize=1)
    frontier = deque([state.first])
    while frontier and state.time_left() > 0:
        path = frontier.popleft()
        frontier.extend(fetch_with_retries(
            state, path, policy, lambda url: fetch_once(http, url, policy.request_timeout),
            time.sleep))
    http.clear()
    return state.result("serial", 1, list(frontier))


def crawl_threads(start_url: str, concurrency: int = 50, *, request_timeout: float = 2.0,
                  retries: int = 2, backoff: float = 0.05, max_pages: int = MAX_PAGES,
                  time_limit: float = 60.0) -> TracedResult:
    """A ``ThreadPoolExecutor(concurrency)``: the main thread hands each new path to the pool."""
    from concurrent.futures import ThreadPoolExecutor

    import urllib3

    policy, state = new_crawl(start_url, concurrency, request_timeout, retries, backoff,
                              max_pages, time_limit)  # checks every parameter
    http = urllib3.PoolManager(maxsize=concurrency)  # one connection pool, thread-safe
    frontier: queue.Queue = queue.Queue()
    frontier.put(state.first)
    pending, lock = [1], threading.Lock()  # paths queued or in flight, and its guard

    def visit(path: str) -> None:
        new: list[str] = []
        try:
            if state.time_left() > 0:  # (a visit queued in the executor past the limit: skipped)
                new = fetch_with_retries(state, path, policy,
                                         lambda url: fetch_once(http, url, policy.request_timeout),
                                         time.sleep)  # blocks this thread only; the GIL is free
            else:
                state.skipped(path)
        finally:
            with lock:
                pending[0] += len(new) - 1
                done = pending[0] == 0
            for link in new:
                frontier.put(link)
            if done:
                frontier.put(STOP)  # nothing queued, nothing in flight: the crawl is done

    executor = ThreadPoolExecutor(concurrency)
    try:
        while state.time_left() > 0:
            try:
                path = frontier.get(timeout=state.time_left())
            except queue.Empty:
                break
            if path is STOP:
                break
            executor.submit(visit, path)  # queued in the executor until a thread is free
    finally:
        executor.shutdown(wait=True)  # visits queued past the time limit return at once
        http.clear()
    return state.result("threads", concurrency, list(frontier.queue))


async def fetch_async(client: Any, url: str) -> tuple[str, bytes]:
    """One GET with httpx's asyncio client: ``(outcome, body)``, as `fetch_once` for urllib3."""
    import httpx

    try:
        reply = await client.get(url)
    except httpx.ConnectError:
        return "refused", b""
    except httpx.TimeoutException:
        return "timeout", b""
    except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
        return "reset", b""
    return ("500" if reply.status_code >= 500 else str(reply.status_code)), reply.content


async def fetch_with_retries_async(state: CrawlState, path: str, policy: RetryPolicy,
                                   client: Any) -> list[str]:
    """`fetch_with_retries` for asyncio: the same steps, each wait an ``await``."""
    import asyncio

    lane = state.started()
    outcome, body, attempt, done = "refused", b"", 0, False
    try:
        for attempt in range(1, policy.retries + 2):
            start = time.perf_counter_ns()
            outcome, body = await fetch_async(client, state.base_url + path)
            state.span(lane, f"{path} {outcome}", outcome, start, time.perf_counter_ns())
            if outcome not in RETRIED or attempt > policy.retries:
                break
            start = time.perf_counter_ns()
            await asyncio.sleep(policy.backoff * 2 ** (attempt - 1))
            state.span(lane, f"{path} backoff", "backoff", start, time.perf_counter_ns())
        done = True
    finally:  # a task cancelled by the time limit leaves its path unfinished
        state.finished(path, outcome if done else None, attempt, lane)
    return [link for link in links_in(body) if state.admit(link)] if outcome == "200" else []


async def crawl_with_tasks(state: CrawlState, policy: RetryPolicy,
                           concurrency: int) -> TracedResult:
    """The asyncio crawl: `concurrency` worker tasks take paths from an ``asyncio.Queue``."""
    import asyncio

    import httpx

    frontier: asyncio.Queue = asyncio.Queue()
    frontier.put_nowait(state.first)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            path = await frontier.get()
            try:
                for link in await fetch_with_retries_async(state, path, policy, client):
                    frontier.put_nowait(link)
            finally:
                frontier.task_done()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=policy.request_timeout) as client:
        workers = [asyncio.create_task(worker(client)) for _ in range(concurrency)]
        try:  # join: every admitted path visited, or the time limit
            await asyncio.wait_for(frontier.join(), max(state.time_left(), 0.001))
        except asyncio.TimeoutError:
            pass  # what is left in the frontier is reported unfinished
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    left = [frontier.get_nowait() for _ in range(frontier.qsize())]
    return state.result("asyncio", concurrency, left)


def crawl_asyncio(start_url: str, concurrency: int = 50, *, request_timeout: float = 2.0,
                  retries: int = 2, backoff: float = 0.05, max_pages: int = MAX_PAGES,
                  time_limit: float = 60.0) -> TracedResult:
    """`concurrency` worker tasks sharing an ``asyncio.Queue`` frontier and one httpx client."""
    import asyncio

    policy, state = new_crawl(start_url, concurrency, request_timeout, retries, backoff,
                              max_pages, time_limit)
    return asyncio.run(crawl_with_tasks(state, policy, concurrency))


_CRAWLERS = {"serial": crawl_serial, "threads": crawl_threads, "gevent": crawl_gevent,
             "asyncio": crawl_asyncio}


def run_model(model: str, start_url: str, concurrency: int = 50, *, timeout: float = 30.0,
              **options: Any):
    """Crawl with `model` in a fresh child (patched for gevent); return the runner's `Run`.

    ``run.value`` is the `CrawlResult`, ``run.trace`` its request spans. `timeout` bounds the
    whole child; `options` (``request_timeout``, ``retries``, ...) go to the crawler.
    """
    from ...runners import run_patched

    check_choice("model", model, MODELS)
    check_int("concurrency", concurrency, 1, MAX_CONCURRENCY)
    return run_patched(_CRAWLERS[model], start_url, concurrency, patch=model == "gevent",
                       trace=False, timeout=timeout, **options)


def crawl_reporting(model: str, start_url: str, concurrency: int, **options: Any) -> TracedResult:
    """`model`'s crawl, run by `helpers.runners.start_patched`: says "ready" first, then crawls,
    so the kernel can show progress (from the site's count) while the child works."""
    from ...runners import report_ready

    check_choice("model", model, MODELS)
    check_int("concurrency", concurrency, 1, MAX_CONCURRENCY)
    report_ready(model)
    return _CRAWLERS[model](start_url, concurrency, **options)


def throughput_sweep(start_url: str, sizes: list[int], pages_per_worker: int = 20,
                     request_timeout: float = 5.0) -> list[dict[str, float]]:
    """In a patched child: one gevent crawl per pool size; pages per second for each.

    A pool of `size` crawls ``size × pages_per_worker`` pages (the whole site at most), so every
    size runs for about the same time: a pool of 1 does not crawl for minutes.
    """
    check_int("pages_per_worker", pages_per_worker, 1, MAX_PAGES)
    RetryPolicy(request_timeout=request_timeout)  # checks it
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise ValueError(f"sizes must be a non-empty list of pool sizes, got {sizes!r}")
    for size in sizes:
        check_int("sizes", size, 1, MAX_CONCURRENCY)
    rows = []
    for size in sizes:
        result = crawl_gevent(start_url, size, request_timeout=request_timeout,
                              max_pages=min(MAX_PAGES, size * pages_per_worker)).value
        rows.append({"pool size": size, "pages": len(result.outcomes),
                     "seconds": result.seconds, "pages per second": result.pages_per_second,
                     "most in flight": result.peak_in_flight})
    return rows


def _memory() -> tuple[int, int]:
    import psutil

    info = psutil.Process().memory_info()
    return info.rss, info.vms


class _PeakSampler:
    """Reads the process's memory every few ms in a thread (a greenlet once patched); keeps the
    peak of the resident size and of the address space."""

    def __init__(self) -> None:
        self.baseline = _memory()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss sampler", daemon=True)
        self._thread.start()

    def _take(self) -> None:
        rss, vms = _memory()
        self.peak = (max(self.peak[0], rss), max(self.peak[1], vms))

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._take()
            time.sleep(_SAMPLE_SECONDS)

    def stop(self) -> tuple[int, int]:
        """(resident growth, address-space growth) in bytes, peak over baseline."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._take()
        return self.peak[0] - self.baseline[0], self.peak[1] - self.baseline[1]


def hold_requests(model: str, base_url: str, count: int, request_timeout: float = 10.0) -> dict:
    """Put `count` requests (pages 0…count-1) in flight at once with `model`; measure the growth.

    Run it in a fresh child (patched for gevent). Returns ``{"model", "requests", "ok",
    "seconds", "KiB per request", "address space KiB per request"}``: the peak growth of the
    resident size (and of the address space) over the baseline taken after the client was made,
    divided by `count`; ``seconds`` runs from that baseline to the last answer, so it is less
    than twice the site's latency only if every request was in flight at one moment.
    """
    check_choice("model", model, MODELS[1:])
    check_int("count", count, 1, MAX_CONCURRENCY)
    timeout = check_float("request_timeout", request_timeout, 0.1, 120.0)
    raise_open_files_towards(count * 2 + 64)
    urls = [f"{base_url.rstrip('/')}/page/{i}" for i in range(count)]
    # One request first, to the site's report (it answers at once): the client's lazy imports
    # and first-use set-up then happen before the baseline and are not counted as per-request.
    warm_up = f"{base_url.rstrip('/')}/_served"
    if model == "asyncio":
        import asyncio

        outcomes, grown, seconds = asyncio.run(_hold_asyncio(urls, timeout, warm_up))
    else:
        import urllib3

        http = urllib3.PoolManager(maxsize=count)
        fetch_once(http, warm_up, timeout)
        sampler = _PeakSampler()
        started = time.perf_counter()
        if model == "threads":
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(count) as executor:
                outcomes = list(executor.map(lambda u: fetch_once(http, u, timeout)[0], urls))
        else:
            from gevent.pool import Pool

            outcomes = list(Pool(count).imap_unordered(
                lambda u: fetch_once(http, u, timeout)[0], urls))
        seconds = time.perf_counter() - started
        grown = sampler.stop()
        http.clear()
    return {"model": model, "requests": count, "ok": outcomes.count("200"),
            "seconds": seconds, "KiB per request": grown[0] / 1024 / count,
            "address space KiB per request": grown[1] / 1024 / count}


async def _hold_asyncio(urls: list[str], timeout: float,
                        warm_up: str) -> tuple[list[str], tuple[int, int], float]:
    import asyncio

    import httpx

    limits = httpx.Limits(max_connections=len(urls), max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        await fetch_async(client, warm_up)
        sampler = _PeakSampler()
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(fetch_async(client, url) for url in urls))
        seconds = time.perf_counter() - started
        grown = sampler.stop()
    return [outcome for outcome, _ in outcomes], grown, seconds
