"""Chapter 02's pictures and its panel.

    Sweep ──────────> plot_sweep(sweep, ax)      throughput by message size, log-log, and memcpy
    TransferRun ────> plot_transfer(run, ax)     both ends on one timeline: send / wait spans
    PipelineRun ────> plot_pipeline(run, ax)     producers, consumers, the closer: who waited
    make_panel() ───> Panel: channel × message size × message count × processes
"""

from __future__ import annotations

from typing import Any

from helpers.course import QUICK, check_start_method
from helpers.timeline import plot_timeline
from helpers.widgets import Choice, Int, Panel

from .common import SIZE_NAMES, format_bytes, format_rate, parse_size
from .producer_consumer import PipelineRun
from .throughput import CHANNELS, Sweep, TransferRun, measure_memcpy, ring_slots, transfer

__all__ = ["make_panel", "plot_pipeline", "plot_sweep", "plot_transfer"]

# One colour per channel on the throughput plot (Okabe-Ito, as the timeline's kinds), memcpy black.
_COLORS = {"Queue": "#E69F00", "Pipe": "#0072B2", "shared memory": "#009E73",
           "Manager": "#CC79A7", "memcpy": "#000000"}
# A marker per line too, so the plot reads in greyscale and for colour-blind readers.
_MARKERS = {"Queue": "o", "Pipe": "s", "shared memory": "^", "Manager": "D", "memcpy": "x"}
# The panel's defaults: about a second of work on 2 cores for any channel.
_PANEL_DEFAULTS = {"message_size": "1 MiB", "message_count": 100 if not QUICK else 10,
                   "processes": 1}


def plot_sweep(sweep: Sweep, ax: Any) -> list:
    """Throughput (bytes/s) against message size for each channel and memcpy, log-log."""
    artists = []
    for name, rates in sweep.rates.items():
        sizes = sorted(rates)
        artists += ax.plot(sizes, [rates[s] for s in sizes], marker=_MARKERS.get(name, "o"),
                           color=_COLORS.get(name), label=name,
                           linestyle="--" if name == "memcpy" else "-")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = [s for s in sweep.sizes if s in (64, 1 << 10, 16 << 10, 256 << 10, 4 << 20, 64 << 20)]
    ax.set_xticks(ticks, [format_bytes(s) for s in ticks])
    ax.set_xlabel("message size")
    ax.set_ylabel("throughput (bytes per second)")
    ax.set_title(f"throughput by message size ({sweep.start_method}); memcpy: one process")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=10)
    return artists


def plot_transfer(run: TransferRun, ax: Any, *, title: str | None = None) -> Any:
    """Both ends of a transfer on one timeline: pink = inside send/recv, orange = waiting.

    The senders' lanes first, in their order, then the receiver: whichever process started first."""
    lanes = sorted(run.trace.lanes(), key=lambda lane: (lane.startswith("receiver"), lane))
    return plot_timeline(run.trace, ax, lanes=lanes, title=title or run.summary())


def plot_pipeline(run: PipelineRun, ax: Any, *, title: str | None = None) -> Any:
    """Producers, consumers and the closer: who computed, who waited, when the sentinels went."""
    lanes = sorted(run.trace.lanes(), key=lambda lane: (
        0 if lane.startswith("producer") else 1 if lane.startswith("consumer") else 2, lane))
    return plot_timeline(run.trace, ax, lanes=lanes, title=title or (
        f"{run.producers} producer(s) → {run.consumers} consumer(s), {run.messages:,} messages"))


def _demo(fig: Any, progress: Any, *, channel: str, message_size: str, message_count: int,
         processes: int, start_method: str | None = None) -> str:
    """The panel's demo: `processes` senders, one receiver, over `channel`; both ends drawn."""
    size = parse_size(message_size)
    progress(0.1, f"sending {message_count} × {message_size} over {channel}…")
    run = transfer(channel, [(size, message_count)], senders=processes,
                   start_method=start_method)
    progress(0.8, "memcpy of the same bytes…")
    copy_rate = measure_memcpy(size, message_count * processes, slots=ring_slots(size))
    ax = fig.add_subplot(1, 1, 1)
    rate = run.rates[size]
    plot_transfer(run, ax, title=f"{channel}: {processes} × {message_count} × {message_size}")
    return (f"{channel}: {format_rate(rate)} with {processes} sender(s) — memcpy in one process "
            f"{format_rate(copy_rate)}, so the channel moves {rate / copy_rate:.1%} of what a "
            f"plain copy does; {run.seconds:.2f} s in all, start-up included")


def make_panel(start_method: str | None = None) -> Panel:
    """Channel, message size, message count and number of sending processes, one receiver."""
    start_method = check_start_method(start_method)

    def run_demo(fig: Any, progress: Any, **values: Any) -> str:
        return _demo(fig, progress, start_method=start_method, **values)

    return Panel("Moving bytes between processes", [
        Choice("channel", CHANNELS, default="Pipe"),
        Choice("message_size", SIZE_NAMES, default=_PANEL_DEFAULTS["message_size"]),
        Int("message_count", 1, 2000, default=_PANEL_DEFAULTS["message_count"]),
        Int("processes", 1, 4, default=_PANEL_DEFAULTS["processes"], label="senders"),
    ], run_demo)
