"""Chapter 06, a crawler: a local site with latencies and faults, crawled serially, with threads,
with gevent (patched, in a child) and with asyncio — checked against what the site served.

    sitemap.py   SiteSpec, build_sitemap: the site's pages, links, latencies and faults (a seed)
    site.py      Site: the kernel's handle on the site's child process (and the CLI's entry)
    site_server.py  the child: gevent's WSGI server, its watcher, the command line (main)
    site_app.py  SiteApp, the WSGI application that answers from the sitemap; Served, its counts
    limits.py    raise_open_files_towards: one open file per request in flight
    crawler.py   fetch_once, fetch_with_retries, crawl_gevent (the page shows them), CrawlState
                 and new_crawl (the bookkeeping behind them), CrawlResult, verify: its check
    models.py    crawl_serial, crawl_threads, crawl_with_tasks (asyncio), run_model,
                 throughput_sweep, hold_requests: the other models, each in a fresh child
    views.py     plot_requests, plot_totals, plot_throughput, plot_memory, crawl_live, make_panel

The views (matplotlib, ipywidgets) and the site load on first use: every child process that
serves the site or runs a crawl imports this package, and would otherwise spend half a second
importing the views; and ``python -m helpers.chapters.ch06_crawler.site`` must find the site
module not yet imported, or Python warns that it runs a second copy of it.
"""

import importlib

from .crawler import (
    RETRIED,
    SPAN_KINDS,
    STOP,
    CrawlResult,
    CrawlState,
    RetryPolicy,
    crawl_gevent,
    crawl_patched_late,
    fetch_once,
    fetch_with_retries,
    links_in,
    new_crawl,
    verify,
    write_editable_copy,
)
from .models import (
    MODELS,
    crawl_asyncio,
    crawl_reporting,
    crawl_serial,
    crawl_threads,
    crawl_with_tasks,
    fetch_async,
    fetch_with_retries_async,
    hold_requests,
    run_model,
    throughput_sweep,
)
from .sitemap import FAULTS, LATENCIES, Page, Sitemap, SiteSpec, build_sitemap, page_path

# Not the lesson, so the page need not show their source (tests/test_code_on_page.py):
__plumbing__ = (
    "Site",  # the local test site: a gevent WSGI server in a child process (infrastructure)
    "SiteSpec",  # the test site's parameters (pages, latencies, faults, seed)
    "build_sitemap",  # draws the test site's pages and links from a seed: the answer key
    "check_lines",  # formats verify()'s {check: passed} as ✓/✗ lines
    "CrawlResult",  # the record a crawl returns (outcomes, attempts, seconds): data to check
    "write_editable_copy",  # copies crawl_gevent's shown source into a script the reader edits
)

_LAZY = {name: ".views" for name in ("OUTCOME_LEGEND", "check_lines", "crawl_live", "make_panel",
                                      "plot_memory", "plot_requests", "plot_throughput",
                                      "plot_totals")}
_LAZY.update({name: ".site" for name in ("Served", "Site", "SiteError")})


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "FAULTS",
    "LATENCIES",
    "MODELS",
    "OUTCOME_LEGEND",
    "RETRIED",
    "SPAN_KINDS",
    "STOP",
    "CrawlResult",
    "CrawlState",
    "Page",
    "RetryPolicy",
    "Served",
    "Site",
    "SiteError",
    "SiteSpec",
    "Sitemap",
    "build_sitemap",
    "check_lines",
    "crawl_asyncio",
    "crawl_gevent",
    "crawl_live",
    "crawl_patched_late",
    "crawl_reporting",
    "crawl_serial",
    "crawl_threads",
    "crawl_with_tasks",
    "fetch_async",
    "fetch_once",
    "fetch_with_retries",
    "fetch_with_retries_async",
    "hold_requests",
    "links_in",
    "make_panel",
    "new_crawl",
    "page_path",
    "plot_memory",
    "plot_requests",
    "plot_throughput",
    "plot_totals",
    "run_model",
    "throughput_sweep",
    "verify",
    "write_editable_copy",
]
