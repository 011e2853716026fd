"""Chapter 05d's figure: the chapter's TaskGroup crawler against a bare asyncio script, in one run.

``python -m bench asyncio_chapter`` starts one local site (200 pages, 100 ms each, no faults, room
for every connection at once) and crawls it, alternating:

- ``asyncio_taskgroup_crawl_200x100ms``: `crawl_pages` (what 05d shows: a ``TaskGroup``, a task
  per page, a ``Semaphore(200)``, `fetch_page` over asyncio's streams with a timeout per request),
  run by ``asyncio.run`` in a child Python of its own;
- ``asyncio_bare_crawl_200x100ms``: the shortest honest asyncio crawler — plain tasks, one
  ``asyncio.wait`` loop, a set, the same HTTP exchange written inline — as a script of its own
  (``_BARE`` below);
- ``asyncio_taskgroup_vs_bare``: the median of the pairs' ratios (bar ≤ 1.2): what the chapter's
  structure (group, semaphore, per-request timeout) costs over the bare crawl.

Both children print their own time, from the first request to the last answer, so interpreter
start-up and imports are not part of either figure. The recorder's cost is `bench/asyncio_tasks`'s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from helpers.chapters.ch05_coroutines import local_site

__all__ = ["measure"]

PAGES, LATENCY, LIMIT = 200, 0.1, 200  # the bar's crawl: 200 pages × 100 ms, 200 at once
# Five pairs: the median ratio then moves by a few hundredths between runs on a busy machine.
_PAIRS = 5
_CHILD_TIMEOUT = 60.0
_ROOT = str(Path(__file__).resolve().parents[1])

_COURSE = r"""
import asyncio, json, sys, time
from helpers.chapters.ch05_coroutines import crawl_pages

started = time.perf_counter()
statuses = asyncio.run(crawl_pages(sys.argv[1], int(sys.argv[2]), max_pages=int(sys.argv[3])))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "pages": sum(s == 200 for s in statuses.values())}))
"""

# No bound: with as many pages as requests allowed, the course's Semaphore never makes one wait
# either, so both crawls issue the same requests at the same moments.
_BARE = r"""
import asyncio, json, re, sys, time
from urllib.parse import urlsplit

start = urlsplit(sys.argv[1])
link = re.compile(rb'href="(/page/\d+)"')


async def get(path):
    reader, writer = await asyncio.open_connection(start.hostname, start.port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: {start.hostname}\r\n\r\n".encode())
    reply = await reader.read()
    writer.close()
    return path, reply


async def main():
    seen, status = {start.path}, {}
    pending = {asyncio.create_task(get(start.path))}
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            path, reply = task.result()
            status[path] = int(reply.split(b" ", 2)[1])
            for found in link.findall(reply):
                found = found.decode()
                if found not in seen:
                    seen.add(found)
                    pending.add(asyncio.create_task(get(found)))
    return status


started = time.perf_counter()
status = asyncio.run(main())
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "pages": sum(s == 200 for s in status.values())}))
"""


def _child(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=_CHILD_TIMEOUT, check=True, env=env, cwd=_ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(report) -> None:
    with local_site(PAGES, LATENCY, capacity=1_000) as site:
        ratios, course, bare, complete = [], [], [], True
        for _ in range(_PAIRS):
            grouped = _child(_COURSE, site.start_url, str(LIMIT), str(PAGES))
            plain = _child(_BARE, site.start_url)
            complete &= grouped["pages"] == PAGES and plain["pages"] == PAGES
            course.append(grouped["seconds"])
            bare.append(plain["seconds"])
            ratios.append(grouped["seconds"] / plain["seconds"])
    report("asyncio_taskgroup_crawl_200x100ms", statistics.median(course), "s (median)")
    report("asyncio_bare_crawl_200x100ms", statistics.median(bare), "s (median)")
    report("asyncio_taskgroup_vs_bare", statistics.median(ratios),
           "x a bare asyncio crawl (median of pairs)", "<= 1.2",
           baseline="a bare asyncio crawl of the same site, alternated with the course's")
    report("asyncio_crawls_complete", int(complete), "(1: both crawls fetched every page)",
           "== 1")
