"""Chapter 06's pictures, the live crawl with a progress bar, and the chapter's panel.

    crawl_live(site, "gevent", 50) ── start_patched(crawl_reporting, ...) ──► child crawls
        │  while the child runs: site.served().requests / expected ──► progress bar
        ▼
    Run (value: CrawlResult, trace: one span per request) ──► plot_requests(trace, ax)
                                                          ──► verify(...) ──► check_lines(...)

Colours of `plot_requests` (timeline kinds, named by what they mean here): a request answered
200 is ``io``; a failed attempt (HTTP 5xx, connection reset, timeout) is ``lock``; the pause
before a retry is ``wait``; a 404 is ``send``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from matplotlib.patches import Patch

from ...course import check_choice, check_float, check_int, check_timeout
from ...timeline import KIND_COLORS, Trace, plot_timeline
from ...widgets import Choice, Float, Int, Panel
from .crawler import verify
from .models import MODELS, crawl_reporting
from .site import Site
from .sitemap import LATENCIES

__all__ = ["OUTCOME_LEGEND", "check_lines", "crawl_live", "make_panel", "plot_memory",
           "plot_requests", "plot_throughput", "plot_totals"]

# What each colour of a request timeline means (the kinds come from crawler.SPAN_KINDS).
OUTCOME_LEGEND = (
    ("200 OK", "io"),
    ("failed attempt (5xx, reset, timeout)", "lock"),
    ("backoff before a retry", "wait"),
    ("404 not found", "send"),
)
# A request timeline draws at most this many lanes: more stop being readable at a notebook's
# width; the lanes drawn are the first workers (a pool fills its lowest slots first).
_MAX_LANES = 16
# Up to this many requests get an outline each; beyond it they are too thin to tell apart anyway.
_MAX_OUTLINED = 5_000
_POLL_SECONDS = 0.1  # how often the live crawl asks the site how far it got
# The panel: its site's typical latency, and a time limit that keeps each run within the 10 s a
# demo cell may take (a serial crawl of 400 pages would need 12 s; it stops starting pages).
_PANEL_LATENCY = 0.03
_PANEL_TIME_LIMIT = 4.0
# Above the slowest page the panel's site can have (a slow tail's 20 × 30 ms = 0.6 s), so only the
# pages that hang time out; a hanging page then costs 3 tries × 1 s, within the cell's 10 s.
_PANEL_REQUEST_TIMEOUT = 1.0


def _lane_key(lane: str) -> tuple[int, str]:
    number = re.search(r"(\d+)$", lane)
    return (int(number.group(1)) if number else -1, lane)


def plot_requests(trace: Trace, ax=None, *, max_lanes: int = _MAX_LANES, title: str | None = None):
    """One lane per worker, one bar per request coloured by outcome; returns the artists."""
    check_int("max_lanes", max_lanes, 1, 200)
    lanes = sorted(Trace().extend(trace).lanes(), key=_lane_key)
    shown = lanes[:max_lanes]
    if len(lanes) > max_lanes:
        title = f"{title + ' — ' if title else ''}first {max_lanes} of {len(lanes)} workers"
    artists = plot_timeline(trace, ax, lanes=shown, title=title, legend=False)
    ax = artists.ax
    events = [e for e in Trace().extend(trace).events if e.lane in shown]
    if len(events) <= _MAX_OUTLINED:  # a white outline per request: back-to-back ones stay apart
        artists.mark(events, facecolors="none", edgecolors="white", linewidths=0.8)
    used = {e.kind for e in events}
    handles = [Patch(color=KIND_COLORS[kind], label=name) for name, kind in OUTCOME_LEGEND
               if kind in used]
    if handles:
        # Titled: the colours are the course timeline's kinds, but here each means an outcome.
        artists.append(ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                                 frameon=False, fontsize=11, title="request outcome",
                                 title_fontsize=11))
    return artists


def plot_totals(results: dict[str, Any], ax, *, unit: str = "s") -> list:
    """Horizontal bars: each crawl's time (``results`` maps a name to a `CrawlResult`)."""
    names = list(results)
    seconds = [results[n].seconds for n in names]
    bars = ax.barh(names, seconds, color=KIND_COLORS["io"])
    labels = ax.bar_label(bars, [f"{s:.2f} {unit}, {len(results[n].outcomes)} pages"
                                 for n, s in zip(names, seconds)], padding=4, fontsize=11)
    ax.invert_yaxis()
    ax.set_xlabel(f"time to crawl ({unit})", fontsize=12)
    ax.set_xlim(0, max(seconds, default=1) * 1.45)
    return [bars, *labels]


def _check_rows(rows: object) -> None:
    if not isinstance(rows, (list, tuple)) or not rows or not all(isinstance(r, dict)
                                                                  for r in rows):
        raise ValueError(f"rows must be a non-empty list of measured rows (dicts), got {rows!r}")


def plot_throughput(rows: list[dict], ax, *, capacity: int, page_seconds: float) -> list:
    """Pages per second against pool size, with the two limits: the pool's and the site's
    (``capacity`` connections at once, each page taking ``page_seconds``)."""
    _check_rows(rows)
    check_int("capacity", capacity, 1, 1_000_000)
    check_float("page_seconds", page_seconds, 1e-6, 60.0)
    sizes = [r["pool size"] for r in rows]
    measured = [r["pages per second"] for r in rows]
    artists = ax.plot(sizes, measured, "o-", color=KIND_COLORS["run"], label="measured")
    ideal = [min(s, capacity) / page_seconds for s in sizes]
    artists += ax.plot(sizes, ideal, "--", color="#777777",
                       label="limit: min(pool size, capacity) / latency")
    artists.append(ax.axvline(capacity, color=KIND_COLORS["lock"], lw=1,
                              label=f"the site's capacity: {capacity} connections"))
    ax.set_xscale("log")
    ax.set_xlabel("pool size (greenlets)", fontsize=12)
    ax.set_ylabel("pages per second", fontsize=12)
    ax.grid(alpha=0.3)
    artists.append(ax.legend(fontsize=10, loc="lower right"))  # the curves rise from lower left
    return artists


def plot_memory(rows: list[dict], ax) -> list:
    """Bars: resident memory per request in flight, for each model."""
    _check_rows(rows)
    names = [r["model"] for r in rows]
    values = [r["KiB per request"] for r in rows]
    bars = ax.bar(names, values, color=KIND_COLORS["send"])
    labels = ax.bar_label(bars, [f"{v:.0f} KiB" for v in values], fontsize=11)
    ax.set_ylabel("KiB per request in flight", fontsize=12)
    ax.set_ylim(0, max(values) * 1.2 or 1)  # room for the labels above the bars
    ax.set_title(f"{rows[0]['requests']:,} requests in flight at once" if rows else "",
                 fontsize=12)
    return [bars, *labels]


def check_lines(checks: dict[str, bool]) -> str:
    """`verify`'s answer as ✓/✗ lines."""
    return "\n".join(f"{'✓' if ok else '✗'} {name}" for name, ok in checks.items())


def crawl_live(site: Site, model: str, concurrency: int, *,
               progress: Callable[[float, str], Any] | None = None, timeout: float = 60.0,
               **options: Any):
    """Crawl `site` with `model` in a child, showing progress while it runs; return its `Run`.

    Progress comes from the site (how many requests it has answered, against the number of
    reachable pages), so the crawler's child sends nothing while it works. Without `progress`, a
    tqdm bar shows it. On an interrupt the child is killed before the interrupt goes on.
    """
    from ...runners import start_patched

    check_choice("model", model, MODELS)
    check_int("concurrency", concurrency, 1, 100_000)
    timeout = check_timeout("timeout", timeout)
    expected = max(1, len(site.sitemap.reachable(options.get("retries", 2))))
    bar = None
    if progress is None:
        from tqdm.auto import tqdm

        bar = tqdm(total=expected, desc=f"{model} crawl", unit="request")

        def progress(fraction: float, text: str) -> None:
            bar.n = min(round(fraction * expected), bar.total)
            bar.refresh()

    before = site.served().requests
    child = start_patched(crawl_reporting, model, site.start_url, concurrency,
                          patch=model == "gevent", **options)
    deadline = time.monotonic() + timeout
    try:
        while child.alive and time.monotonic() < deadline:
            try:
                done = site.served(timeout=1.0).requests - before
            except OSError:  # the site is busy answering the crawl: try again next time
                done = 0
            progress(min(done / expected, 1.0), f"{done} requests")
            time.sleep(_POLL_SECONDS)
        run = child.stop(timeout=max(1.0, deadline - time.monotonic()))
        progress(1.0, f"{len(run.value.outcomes)} pages")
        return run
    except BaseException:
        child.kill()
        raise
    finally:
        if bar is not None:
            bar.close()


def make_panel() -> Panel:
    """The chapter's panel: a fresh site, crawled by the model and pool size you choose."""
    return Panel(
        "Crawl the local site",
        [
            Int("pages", 20, 400, default=200),
            Choice("distribution", list(LATENCIES), default="exponential",
                   label="latency distribution"),
            Float("failure_rate", 0.0, 0.3, default=0.1, step=0.05, label="failure rate"),
            Int("pool_size", 1, 200, default=20, label="pool size"),
            Choice("model", list(MODELS), default="gevent"),
        ],
        _panel_demo,
    )


def _panel_demo(fig, progress, *, pages: int, distribution: str, failure_rate: float,
                pool_size: int, model: str) -> str:
    with Site(pages, latency=_PANEL_LATENCY, distribution=distribution,
              failure_rate=failure_rate) as site:
        run = crawl_live(site, model, pool_size, progress=progress,
                         request_timeout=_PANEL_REQUEST_TIMEOUT, time_limit=_PANEL_TIME_LIMIT)
        served = site.served()
    result = run.value
    ax = fig.add_subplot()
    plot_requests(run.trace, ax, max_lanes=12,
                  title=f"{model}, pool {result.concurrency}: {result.seconds:.2f} s")
    checks = verify(result, served, site.sitemap)
    stopped = (f"; stopped starting pages after {_PANEL_TIME_LIMIT:g} s "
               f"({len(result.unfinished)} left)" if result.unfinished else "")
    failed = [name for name, ok in checks.items() if not ok]
    return (f"{len(result.fetched)} pages fetched, {len(result.failures)} failed, "
            f"{result.requests} requests in {result.seconds:.2f} s{stopped}. Serial would wait "
            f"{site.sitemap.serial_seconds(timeout=_PANEL_REQUEST_TIMEOUT):.1f} s. Checked "
            f"against the site: {len(checks) - len(failed)} of {len(checks)} checks pass"
            + (f" (not: {'; '.join(failed)})." if failed else "."))
