"""Chapter 07's pictures, and its widget panel. Every plot takes its axes and returns artists.

    one_client_at_a_time ──► plot_waits       client A and B of each socketserver, on a timeline
    compare_models       ──► plot_load        requests/s per model, and latency by percentile
    idle_memory          ──► plot_memory      server RSS against idle clients, per model
    prefork_scaling      ──► plot_scaling     requests/s against worker processes
                         ──► plot_served_by   each connection as a line, coloured by its process
    misbehaving_clients  ──► plot_bad_clients the four clients on a timeline
"""

from __future__ import annotations

from typing import Any

from matplotlib.ticker import FuncFormatter, NullFormatter

from ...course import usable_cores
from ...timeline import Event, Trace, model_color, plot_timeline
from ...widgets import Choice, Int, Panel
from .demos import compare_models
from .prefork import MAX_WORKERS
from .servers import MODELS

__all__ = ["make_panel", "plot_bad_clients", "plot_latency", "plot_load", "plot_memory",
           "plot_rps", "plot_scaling", "plot_served_by", "plot_waits"]

# A model has the same colour in every chapter (helpers.timeline.MODEL_COLORS); the bare server,
# gevent with nothing on top, is a lighter shade of gevent's.
_BARE_GEVENT_COLOR = "#7fcfb9"


def _color(name: str) -> str:
    return _BARE_GEVENT_COLOR if name == "bare gevent" else model_color(name)

# Process colours for plot_served_by: distinct on a projector, colour-blind safe (Okabe-Ito).
_PROCESS_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
                   "#000000")
_FONT = 11


def plot_waits(result: dict[str, Any], ax) -> list:
    """Client A holds its connection; B's *wait* is how long the server left it unanswered.

    Each server's pair starts at the same time zero (its client A's connect).
    """
    lanes = [f"{model}: client {client}" for model in result["models"] for client in "AB"]
    return plot_timeline(result["trace"], ax, lanes=lanes,
                         title="Client B connects while client A stays (time from A's connect)")


def _check_results(results: object) -> dict[str, dict[str, Any]]:
    """`compare_models`' figures: a non-empty dict of model name -> that model's figures."""
    if not isinstance(results, dict) or not results or \
            not all(isinstance(figures, dict) for figures in results.values()):
        raise ValueError("results must hold at least one model's figures (compare_models' "
                         f"value: a dict of model -> figures), got {results!r:.80}")
    return results


def plot_load(results: dict[str, dict[str, Any]], axes) -> list:
    """Left: requests per second by model. Right: latency by percentile (log scale)."""
    _check_results(results)
    return plot_rps(results, axes[0]) + plot_latency(results, axes[1])


def plot_rps(results: dict[str, dict[str, Any]], ax) -> list:
    """Requests per second by model, the figure on each bar."""
    names = list(_check_results(results))
    artists = [ax.bar(names, [results[n]["rps"] for n in names],
                      color=[_color(n) for n in names])]
    for index, name in enumerate(names):
        artists.append(ax.text(index, results[name]["rps"], f"{results[name]['rps']:,.0f}",
                               ha="center", va="bottom", fontsize=_FONT))
    ax.set_ylabel("requests / s", fontsize=_FONT)
    first = results[names[0]]
    ax.set_title(f"{first['connections']} connections, {first['message bytes']} B lines",
                 fontsize=_FONT + 1)
    return artists


def plot_latency(results: dict[str, dict[str, Any]], ax) -> list:
    """Latency by percentile of requests, one line per model (log scale), p50 and p99 marked."""
    _check_results(results)
    artists = []
    for name, figures in results.items():
        sample = figures["sample us"]
        percent = [100 * i / len(sample) for i in range(len(sample))]
        artists += ax.plot(percent, [v / 1000 for v in sample], label=name,
                           color=_color(name), lw=2)
    for q in (50, 99):
        artists.append(ax.axvline(q, color="#999999", lw=0.8, ls=":"))
        artists.append(ax.text(q, 1.0, f"p{q}", transform=ax.get_xaxis_transform(),
                               ha="center", va="bottom", fontsize=_FONT - 1, color="#555555"))
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())  # 2×10⁰, 3×10⁰ … would crowd the axis
    ax.set_xlabel("percentile of requests", fontsize=_FONT)
    ax.set_ylabel("latency (ms)", fontsize=_FONT)
    ax.legend(fontsize=_FONT - 1, frameon=False)
    ax.grid(alpha=0.3)
    return artists


def plot_memory(result: dict[str, Any], ax) -> list:
    """Server RSS (MiB) against idle clients held, one line per model, slope in the legend."""
    artists = []
    for model, row in result["models"].items():
        clients = [c for c, _ in row["rows"]]
        mib = [r / 2**20 for _, r in row["rows"]]
        artists += ax.plot(clients, mib, marker="o", color=_color(model), lw=2,
                           label=f"{model}: {row['KiB per connection']:.1f} KiB per client")
    ax.set_xlabel("idle clients held open", fontsize=_FONT)
    ax.set_ylabel("server RSS (MiB)", fontsize=_FONT)
    ax.legend(fontsize=_FONT - 1, frameon=False)
    ax.grid(alpha=0.3)
    return artists


def plot_scaling(result: dict[str, Any], ax) -> list:
    """Requests/s against worker processes, with the ideal (one worker's rate × N)."""
    counts = sorted(result["rows"])
    rps = [result["rows"][n]["rps"] for n in counts]
    artists = ax.plot(counts, rps, marker="o", lw=2, color=_color("gevent"), label="measured")
    artists += ax.plot(counts, [rps[0] * n / counts[0] for n in counts], ls="--",
                       color="#999999", label="ideal: N × one worker")
    ax.set_xticks(counts)
    ax.set_xlabel(f"gevent worker processes (this machine: {result['cores']} cores)",
                  fontsize=_FONT)
    ax.set_ylabel("requests / s", fontsize=_FONT)
    ax.set_title(f"about {result['cpu_ms']:g} ms of CPU per request", fontsize=_FONT + 1)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=_FONT - 1, frameon=False)
    ax.grid(alpha=0.3)
    return artists


def plot_served_by(books: list[dict[str, Any]], ax, *, title: str | None = None) -> list:
    """Each connection a line from accept to close, coloured by the process that served it."""
    if isinstance(books, str) or not isinstance(books, (list, tuple)) or not books or \
            not all(isinstance(book, dict) for book in books):
        raise ValueError("books must be a non-empty list of worker books (a server's stop() "
                         f"value's \"workers\"), got {books!r}")
    spans = [(s[1], s[2], book["pid"]) for book in books for s in book["spans"]]
    if not spans:
        return [ax.text(0.5, 0.5, "no connections", ha="center", transform=ax.transAxes)]
    origin = min(s[0] for s in spans)
    artists = []
    pids = sorted({pid for _, _, pid in spans})
    for row, (start, end, pid) in enumerate(sorted(spans)):
        color = _PROCESS_COLORS[pids.index(pid) % len(_PROCESS_COLORS)]
        artists.append(ax.hlines(row, (start - origin) / 1e6, (end - origin) / 1e6, color=color,
                                 lw=2))
    for index, pid in enumerate(pids):
        served = sum(1 for *_, p in spans if p == pid)
        artists += ax.plot([], [], color=_PROCESS_COLORS[index % len(_PROCESS_COLORS)], lw=3,
                           label=f"pid {pid}: {served} connections")
    ax.set_xlabel("time (ms)", fontsize=_FONT)
    ax.set_ylabel("connection", fontsize=_FONT)
    ax.invert_yaxis()
    ax.legend(fontsize=_FONT - 1, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=_FONT + 1)
    return artists


def plot_bad_clients(result: dict[str, Any], ax) -> list:
    """The four clients' connections on one timeline (each ends where the server closed it)."""
    trace = Trace()
    for lane, spans in result["spans"].items():
        for label, kind, start, end in spans:
            trace.add(Event(lane, label, kind, start, end))
    lanes = [lane for lane in ("good client", "connects, never sends", "sends half a line",
                               "leaves mid-reply") if lane in result["spans"]]
    return plot_timeline(trace, ax, lanes=lanes, title="Bad clients beside a good one")


# -- the panel -------------------------------------------------------------------------------
_SIZES = [16, 64, 256, 1024, 4096, 16384, 65536]
# The panel's load lasts this long per run: long enough for stable percentiles, short enough
# that a run (server start, load, stop) stays within a few seconds.
_PANEL_SECONDS = 1.0


def make_panel() -> Panel:
    """The chapter's panel: load one server model with the course's generator."""
    return Panel(
        "Load a server: requests/s, latency, and which process served whom",
        [
            Choice("model", list(MODELS), default="gevent", label="server model"),
            Int("connections", 1, 1000, default=100),
            Choice("message_size", _SIZES, default=64, label="message size (B)"),
            Int("workers", 1, min(MAX_WORKERS, max(2, 2 * usable_cores())), default=1,
                label="worker processes"),
        ],
        _panel_demo,
    )


def _panel_demo(fig, progress, *, model: str, connections: int, message_size: int,
                workers: int) -> str:
    progress(0.1, f"{model} × {workers}: loading with {connections} connections")
    results = compare_models((model,), connections, 1_000_000, message_size, _PANEL_SECONDS,
                             workers=workers)
    figures = results[model]
    ax_lat, ax_who = fig.subplots(1, 2)
    plot_latency(results, ax_lat)
    plot_served_by(figures["books"], ax_who, title="who served which connection")
    server = figures["server"]
    progress(1.0)
    per_pid = ", ".join(f"{n}" for n in server.get("connections per pid", {}).values())
    return (f"{model}, {workers} worker(s): {figures['rps']:,.0f} requests/s, "
            f"p50 {figures['p50 us'] / 1000:.2f} ms, p99 {figures['p99 us'] / 1000:.2f} ms, "
            f"{figures['errors']} errors; connections per process: {per_pid}")
