"""Chapter 03's pictures and panel.

    Workers.trace ──> plot_story(trace, ax, lanes)   the timeline, each wide span named
    count_demo(...) ──> plot_count(result, axes)     counted vs lost, and when each counted
    make_panel()  ──> processes, increments, strategy, start method ──> count_demo ──> plot_count
"""

from __future__ import annotations

from collections.abc import Sequence

from helpers.course import QUICK, available_start_methods, kernel_safe_start_method
from helpers.timeline import Trace, plot_timeline

from .counters import STRATEGIES, CountResult, count_demo

__all__ = ["PANEL_INCREMENTS", "make_panel", "plot_count", "plot_story"]

_LABEL_FONT_SIZE = 9  # smaller than the axis text (12 pt), still readable on a projector
# A label is written on its span only if it fits: a character of DejaVu Sans is at most about
# 0.62 of the font size wide, and a span keeps a little margin on each side.
_CHAR_WIDTH_EM = 0.62
_LABEL_MARGIN = 0.9
# The time axis takes about this share of the axes' box once lane names and legend are placed.
_PLOT_SHARE = 0.8
# The panel's increments per process: 4 processes × 200,000 locked increments take a few
# seconds on a busy 2-core machine (a contended lock round trip costs several µs).
PANEL_INCREMENTS = (10_000, 50_000, 100_000, 200_000)


def plot_story(trace: Trace, ax, lanes: Sequence[str] | None = None, *, title: str | None = None,
               labels: bool = True):
    """`plot_timeline`, with each span wide enough to read labelled with what it was."""
    artists = plot_timeline(trace, ax, lanes=lanes, title=title)
    if not labels or not len(trace):
        return artists
    order = list(lanes) if lanes is not None else trace.lanes()
    shown = [e for e in trace if e.lane in order]
    if not shown:
        return artists
    origin = min(e.start_ns for e in shown)
    width = max(max(e.end_ns for e in shown) - origin, 1)
    axis_points = ax.figure.get_size_inches()[0] * ax.get_position().width * 72 * _PLOT_SHARE
    for e in shown:
        text_points = len(e.label) * _CHAR_WIDTH_EM * _LABEL_FONT_SIZE
        if text_points > _LABEL_MARGIN * axis_points * e.duration_ns / width:
            continue
        middle = ((e.start_ns + e.end_ns) / 2 - origin) / 1e6
        artists.append(ax.text(middle, order.index(e.lane), e.label, ha="center", va="center",
                               fontsize=_LABEL_FONT_SIZE, color="white", clip_on=True))
    return artists


def plot_count(result: CountResult, axes) -> list:
    """Left: counted and lost increments; right: when each process was counting."""
    bars_ax, time_ax = axes
    artists = list(bars_ax.bar(["counted", "lost"], [result.final, result.lost],
                               color=["#0072B2", "#D55E00"]))
    artists.append(bars_ax.axhline(result.expected, color="#333333", linestyle="--",
                                   label=f"expected {result.expected:,}"))
    bars_ax.set_ylim(0, result.expected * 1.15)
    bars_ax.legend(loc="upper right", frameon=False)
    bars_ax.set_title(f"{result.strategy}: {result.lost_fraction:.1%} lost")
    artists += plot_timeline(result.trace, time_ax, legend=False,
                             title=f"{result.processes} processes counting")
    return artists


def _demo(fig, progress, *, processes: int, increments: int, strategy: str,
         start_method: str) -> str:
    """Panel demo: one count, drawn as counted vs lost and a timeline."""
    progress(0.1, "counting…")
    result = count_demo(processes, increments, strategy, start_method=start_method)
    plot_count(result, fig.subplots(1, 2, width_ratios=[1, 2]))
    return str(result)


def make_panel():
    """The chapter 03 panel: processes, increments, locking strategy, start method."""
    from helpers.widgets import Choice, Int, Panel

    methods = available_start_methods()
    default = kernel_safe_start_method()
    return Panel(
        "Lost updates: processes adding to one shared counter",
        [Int("processes", 1, 4, default=2),
         Choice("increments", PANEL_INCREMENTS, default=10_000 if QUICK else 100_000,
                label="increments per process"),
         Choice("strategy", STRATEGIES, default="none", label="locking"),
         Choice("start_method", methods, default=default)],
        _demo,
    )
