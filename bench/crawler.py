"""Chapter 06's figures: the course's gevent crawler against a bare gevent script, in one run.

``python -m bench crawler`` starts one local site (200 pages, 100 ms each, no faults, room for
every connection at once) and crawls it, alternating:

- ``crawler_gevent_200x100ms``: `crawl_gevent` with a pool of 200 in a patched child (retries,
  timeouts, the visited set, the timeline spans and all);
- ``crawler_bare_gevent_200x100ms``: the shortest honest crawler — patch, a ``Pool(200)``, urllib3,
  a set — as a script of its own (``_BARE`` below), in its own process;
- ``crawler_vs_bare``: the median of the pairs' ratios (bar ≤ 1.2);
- ``crawler_result_matches_site``: 1 when every check of `verify` passed for every course crawl;
- ``crawler_serial_sum_of_latencies``: what a serial crawl would wait, from the sitemap — the sum
  of the latencies. It is not run (20 s of waiting would tell nothing more);
- ``crawler_threads_200x100ms`` and ``crawler_asyncio_200x100ms``: the same crawl with the other
  two models, each right after a course gevent crawl, and ``crawler_threads_vs_gevent``,
  ``crawler_asyncio_vs_gevent``: the median of those pairs' ratios (shown, no bar: which model
  is fastest here depends on the machine, as the chapter says).

Each time is measured inside its child, from the first request to the last answer, so process
start-up (different for a script and for the course's runner) is not part of any figure.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from helpers.chapters.ch06_crawler.crawler import crawl_gevent, verify
from helpers.chapters.ch06_crawler.models import run_model
from helpers.chapters.ch06_crawler.site import Site
from helpers.runners import run_patched

__all__ = ["measure"]

PAGES, LATENCY, POOL = 200, 0.1, 200  # the bar: 200 pages × 100 ms, a pool of 200
# Five pairs: the median ratio then moves by a few hundredths between runs on a busy machine.
_PAIRS = 5
# Three pairs for each other model against gevent: their ratios are shown, not held to a bar.
_MODEL_PAIRS = 3
_CHILD_TIMEOUT = 60.0
# A pool as large as the site, so a greenlet spawning its links never waits for a slot (with a
# smaller pool this script could block inside the pool it waits on: the course's crawler queues).
_BARE = r"""
from gevent import monkey; monkey.patch_all()
import json, re, sys, time
import urllib3
from gevent.pool import Pool

start, size = sys.argv[1], int(sys.argv[2])
base = start.split("/page/")[0]
http = urllib3.PoolManager(maxsize=size)
link = re.compile(rb'<a href="(/page/\d+)"')
seen, status = {"/page/0"}, {}
pool = Pool(size)

def fetch(path):
    reply = http.request("GET", base + path, retries=False, timeout=10)
    status[path] = reply.status
    for found in link.findall(reply.data):
        found = found.decode()
        if found not in seen:
            seen.add(found)
            pool.spawn(fetch, found)

started = time.perf_counter()
pool.spawn(fetch, "/page/0")
pool.join()
print(json.dumps({"seconds": time.perf_counter() - started, "pages": len(status)}))
"""


def _bare(start_url: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _BARE, start_url, str(POOL)],
                          capture_output=True, text=True, timeout=_CHILD_TIMEOUT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(report) -> None:
    with Site(PAGES, latency=LATENCY, capacity=1_000) as site:
        ratios, course, bare, matches = [], [], [], True
        for _ in range(_PAIRS):
            before = site.served()
            result = run_patched(crawl_gevent, site.start_url, POOL, trace=False,
                                 timeout=_CHILD_TIMEOUT).value
            matches &= all(verify(result, site.served().since(before), site.sitemap).values())
            plain = _bare(site.start_url)
            matches &= plain["pages"] == PAGES
            course.append(result.seconds)
            bare.append(plain["seconds"])
            ratios.append(result.seconds / plain["seconds"])
        others: dict[str, list[float]] = {"threads": [], "asyncio": []}
        against: dict[str, list[float]] = {"threads": [], "asyncio": []}
        for _ in range(_MODEL_PAIRS):
            for model in others:
                gevent = run_model("gevent", site.start_url, POOL, timeout=_CHILD_TIMEOUT).value
                other = run_model(model, site.start_url, POOL, timeout=_CHILD_TIMEOUT).value
                matches &= len(other.fetched) == PAGES
                others[model].append(other.seconds)
                against[model].append(other.seconds / gevent.seconds)
        serial = site.sitemap.serial_seconds()
    report("crawler_gevent_200x100ms", statistics.median(course), "s")
    report("crawler_bare_gevent_200x100ms", statistics.median(bare), "s")
    report("crawler_vs_bare", statistics.median(ratios), "x bare gevent script", "<= 1.2",
           baseline="a bare gevent crawl of the same site, alternated with the course's")
    report("crawler_result_matches_site", int(matches), "(1 = every check passed)", "== 1")
    report("crawler_serial_sum_of_latencies", serial, "s (from the sitemap, not run)")
    for model, seconds in others.items():
        report(f"crawler_{model}_200x100ms", statistics.median(seconds), "s")
        report(f"crawler_{model}_vs_gevent", statistics.median(against[model]),
               "x the course's gevent crawl (time)")
