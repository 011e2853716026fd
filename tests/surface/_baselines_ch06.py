"""Valid arguments for chapter 06's public callables with required parameters (see _fuzz.py)."""

from __future__ import annotations


def baselines() -> dict:
    import urllib3
    from matplotlib.figure import Figure

    from helpers.chapters.ch06_crawler import (
        CrawlResult,
        CrawlState,
        RetryPolicy,
        Served,
        SiteSpec,
        build_sitemap,
    )
    from helpers.timeline import Trace

    nowhere = "http://127.0.0.1:9"  # the discard port: nothing listens, nothing is sent
    return {
        "fetch_once": {"http": urllib3.PoolManager(), "url": nowhere + "/page/0"},
        "fetch_with_retries": {"state": CrawlState(nowhere + "/page/0", 1), "path": "/page/0",
                               "policy": RetryPolicy(), "fetch": lambda url: ("404", b""),
                               "sleep": lambda seconds: None},
        "new_crawl": {"start_url": nowhere + "/page/0", "concurrency": 1, "request_timeout": 1.0,
                      "retries": 1, "backoff": 0.0, "max_pages": 1, "time_limit": 1.0},
        "verify": {"result": CrawlResult("gevent", 1), "served": Served(),
                   "sitemap": build_sitemap(SiteSpec(pages=1))},
        "run_model": {"model": "gevent", "start_url": nowhere + "/page/0"},
        "hold_requests": {"model": "gevent", "base_url": nowhere},
        "crawl_reporting": {"model": "gevent", "start_url": nowhere + "/page/0"},
        "throughput_sweep": {"start_url": nowhere + "/page/0", "sizes": [1]},
        "crawl_live": {"site": None, "model": "gevent", "concurrency": 1},
        "plot_requests": {"trace": Trace(), "ax": Figure().add_subplot()},
        "plot_throughput": {"rows": [{"pool size": 1, "pages per second": 1.0}],
                            "ax": Figure().add_subplot(), "capacity": 1, "page_seconds": 0.01},
        "plot_memory": {"rows": [{"model": "gevent", "KiB per request": 1.0, "requests": 1}],
                        "ax": Figure().add_subplot()},
        "run_limited": {"module_path": "/nonexistent.py", "start_urls": [nowhere + "/page/0"],
                        "pool": 1, "per_host": 1},
    }
