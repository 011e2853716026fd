"""Chapter 05d's asyncio helpers: a page fetch and a crawl written in asyncio, the loop's debug
mode captured as data, and a fresh event loop in a thread for code that cannot await.

The notebook writes most of its asyncio in the cells (the kernel already runs an event loop, so a
cell can ``await``). What lives here is what another process or the bench must reach too, each
piece short enough to show with `helpers.source.show_source`::

    crawl_pages(start_url, limit) ── TaskGroup: one task per page, created as links are found
        │  Semaphore(limit): at most `limit` requests at once
        ▼
    fetch_page(url) ── asyncio.open_connection ── GET ──> the local site (chapter 06's Site,
        ◄── (status, body) ─────────────────────────────   a gevent server in a child process)

    capture_slow_callbacks(seconds) ── the running loop in debug mode: every step that holds the
        loop longer than `seconds` becomes a line in a list (asyncio logs it as a warning)

    run_in_thread(coro_fn, *args) ── a new event loop in a new thread: for a panel's button or a
        check, called where a loop already runs and ``asyncio.run`` is refused; bounded, and the
        coroutine is cancelled if it overstays
    task_demo(tasks, limit, blocking) ── the panel's run: tasks through a Semaphore, recorded

`local_site` starts chapter 06's site (infrastructure the page does not teach).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from helpers.course import check_callable, check_choice, check_float, check_int, check_timeout
from helpers.timeline import TaskRecorder, Trace

__all__ = [
    "BLOCKING",
    "capture_slow_callbacks",
    "crawl_pages",
    "fetch_page",
    "local_site",
    "run_in_thread",
    "task_demo",
]

# The hosts fetch_page talks to: the course's site is on this machine, and nothing leaves it.
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# A crawl stops admitting pages here: chapter 06's site never has more.
_MAX_PAGES = 20_000
# At most this many requests at once: far above the site's capacity and the open-file limit
# a reader's machine gives a process by default.
_MAX_LIMIT = 5_000
# local_site: a page answers within a second at most; slower pages make a crawl too slow for a
# notebook cell.
_MAX_LATENCY = 1.0
# A panel run: at most this many tasks (each gets a lane) and this long a step.
_MAX_TASKS = 100
# What the panel's blocking task does: nothing; block the loop; or block in a thread.
BLOCKING = ("none", "in the loop", "to_thread")
_LINK = re.compile(rb'href="(/page/\d+)"')
_SLOW = re.compile(r"Executing <Task.*?name='([^']*)'.*> took ([\d.]+) seconds", re.S)


def _local_url(name: str, url: Any):
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "http" or parts.hostname not in _LOCAL_HOSTS:
        raise ValueError(f"{name} must be an http:// address on this machine, got {url!r}")
    return parts


async def fetch_page(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET `url` (on this machine) with asyncio's streams: ``(status, body)``, within `timeout`."""
    parts = _local_url("url", url)
    timeout = check_timeout("timeout", timeout)

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            writer.write(f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {parts.hostname}\r\n\r\n"
                         .encode())
            await writer.drain()  # wait until the request is handed to the OS
            return await reader.read()  # everything, until the server closes the connection
        finally:
            writer.close()  # whatever happened, cancellation included: no socket left open
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    reply = await asyncio.wait_for(exchange(), timeout)  # wait_for: Python 3.10 and later
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def crawl_pages(start_url: str, limit: int = 50, *, max_pages: int = 1_000,
                      timeout: float = 10.0) -> dict[str, int]:
    """Crawl from `start_url`, `limit` requests at most at once: ``{path: HTTP status}``.

    One task per page, in one ``TaskGroup`` (Python 3.11+): the ``async with`` block ends when
    every task has, the ones created while it waits included; if one raises, the group cancels
    the others and raises an ``ExceptionGroup``.
    """
    check_int("limit", limit, 1, _MAX_LIMIT)
    check_int("max_pages", max_pages, 1, _MAX_PAGES)
    _local_url("start_url", start_url)
    timeout = check_timeout("timeout", timeout)
    base, _, first = start_url.partition("/page/")
    statuses: dict[str, int] = {}  # path -> status; 0 while its task runs (no page twice)
    slots = asyncio.Semaphore(limit)

    async def visit(path: str, group: asyncio.TaskGroup) -> None:
        async with slots:  # waits while `limit` requests are out
            status, body = await fetch_page(base + path, timeout)
        statuses[path] = status
        for link in (found.decode() for found in _LINK.findall(body)):
            if link not in statuses and len(statuses) < max_pages:
                statuses[link] = 0
                group.create_task(visit(link, group), name=link)

    async with asyncio.TaskGroup() as group:
        statuses["/page/" + first] = 0
        group.create_task(visit("/page/" + first, group), name="/page/" + first)
    return statuses


def _short(message: str) -> str:
    """asyncio's "Executing <Task ... name='x' ...> took 0.3 seconds", without the long repr."""
    found = _SLOW.match(message)
    return f"Executing task {found[1]!r} took {found[2]} seconds" if found else message


@contextlib.contextmanager
def capture_slow_callbacks(seconds: float = 0.05) -> Iterator[list[str]]:
    """Debug mode on the running loop for the block: one line per step that held the loop for
    `seconds` or more (asyncio's own warning, kept as data instead of printed on stderr)."""
    seconds = check_float("seconds", seconds, 0.001, 60.0)
    loop = asyncio.get_running_loop()  # RuntimeError outside a running loop
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(_short(record.getMessage()))  # type: ignore
    logger = logging.getLogger("asyncio")
    was_debug, was_threshold, was_propagating = (loop.get_debug(), loop.slow_callback_duration,
                                                 logger.propagate)
    logger.addHandler(handler)
    logger.propagate = False  # not on stderr: the cell prints the lines
    loop.set_debug(True)
    loop.slow_callback_duration = seconds
    try:
        yield lines
    finally:
        loop.slow_callback_duration = was_threshold
        loop.set_debug(was_debug)
        logger.propagate = was_propagating
        logger.removeHandler(handler)


def run_in_thread(coro_fn: Callable[..., Any], *args: Any, timeout: float = 60.0,
                  loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> Any:
    """``coro_fn(*args)`` on a new event loop in a new thread; its value, or what it raised.

    For code that runs where a loop is already running (a cell, a panel's button): there,
    ``asyncio.run`` raises. After `timeout` seconds the coroutine is cancelled and
    ``TimeoutError`` raised; the thread is joined before this returns.
    """
    check_callable("coro_fn", coro_fn)
    timeout = check_timeout("timeout", timeout)
    if loop_factory is not None:
        check_callable("loop_factory", loop_factory)
    outcome: dict[str, Any] = {}
    ready = threading.Event()

    def main() -> None:
        loop = (loop_factory or asyncio.new_event_loop)()
        try:
            outcome["task"] = loop.create_task(coro_fn(*args))
            outcome["loop"] = loop
            ready.set()
            outcome["value"] = loop.run_until_complete(outcome["task"])
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc
        finally:
            ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=main, name="cc-asyncio-loop", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():  # overstayed: cancel it on its own loop, then wait for it to end
        ready.wait(1.0)
        if "loop" in outcome:
            outcome["loop"].call_soon_threadsafe(outcome["task"].cancel)
        thread.join(5.0)
        raise TimeoutError(f"the coroutine did not finish within {timeout:g} s; it was cancelled")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


async def task_demo(tasks: int = 10, limit: int = 3, blocking: str = "none",
                    step_seconds: float = 0.05) -> tuple[Trace, dict[str, Any]]:
    """The panel's run: `tasks` tasks, each three steps of `step_seconds` of waiting, through a
    ``Semaphore(limit)``; beside them a task that blocks for `step_seconds` twice (`BLOCKING`).
    Returns the recording and what was measured (seconds, the most tasks inside at once)."""
    check_int("tasks", tasks, 1, _MAX_TASKS)
    check_int("limit", limit, 1, _MAX_TASKS)
    check_choice("blocking", blocking, BLOCKING)
    check_float("step_seconds", step_seconds, 0.001, 1.0)
    slots = asyncio.Semaphore(limit)
    inside = {"now": 0, "most": 0}

    async def work() -> None:
        async with slots:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
            for _ in range(3):
                await asyncio.sleep(step_seconds)
            inside["now"] -= 1

    async def blocker() -> None:
        for _ in range(2):
            if blocking == "in the loop":
                time.sleep(step_seconds)  # holds the loop: no other task runs meanwhile
            else:
                await asyncio.to_thread(time.sleep, step_seconds)  # a thread waits instead
            await asyncio.sleep(step_seconds)

    started = time.perf_counter()
    async with TaskRecorder() as recorder:
        jobs = [asyncio.create_task(work(), name=f"task {k}") for k in range(tasks)]
        if blocking != "none":
            jobs.append(asyncio.create_task(blocker(), name="blocking"))
        try:
            await asyncio.wait_for(asyncio.gather(*jobs), timeout=60)
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
    seconds = time.perf_counter() - started
    return recorder.recording(), {"seconds": seconds, "most at once": inside["most"]}


def local_site(pages: int = 50, latency: float = 0.05, capacity: int = 1_000):
    """Chapter 06's local site with `pages` pages of fixed `latency` (a ``with`` block)."""
    from helpers.chapters.ch06_crawler import Site

    return Site(check_int("pages", pages, 1, _MAX_PAGES),
                latency=check_float("latency", latency, 0.0, _MAX_LATENCY),
                capacity=check_int("capacity", capacity, 1, 10_000))
