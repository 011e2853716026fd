"""Chapter 03's pictures and panel.

    Workers.trace ──> plot_story(trace, ax, lanes)      plot_timeline ──> TimelineLayout
                        each wide span named            at layout.x(ns), layout.y(lane)
                        handoffs=(wait, hold): an arrow from each release to the wait it ended
    count_demo(...) ──> plot_count(result, axes)        counted vs lost; when each counted, and
                                                        the window where they counted together
    make_panel()  ──> processes, increments, strategy, start method ──> count_demo ──> plot_count

Every overlay is placed with the layout `plot_timeline` returns (its rows and its time zero), so
it lands on the bars it belongs to whatever lanes are shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from helpers.course import QUICK, available_start_methods, kernel_safe_start_method
from helpers.timeline import Trace, plot_timeline

from .counters import STRATEGIES, CountResult, count_demo
from .primitives import handoffs as find_handoffs

__all__ = ["PANEL_INCREMENTS", "make_panel", "plot_count", "plot_story"]

_LABEL_FONT_SIZE = 9  # smaller than the axis text (12 pt), still readable on a projector
# A label is written on its span only if it fits: a character of DejaVu Sans is at most about
# 0.62 of the font size wide, and a span keeps a little margin on each side.
_CHAR_WIDTH_EM = 0.62
_LABEL_MARGIN = 0.9
# The time axis takes about this share of the axes' box once lane names and legend are placed.
_PLOT_SHARE = 0.8
# The hand-off arrows: black on the red and blue bars, thin enough not to hide them.
_HANDOFF_COLOR = "#000000"
_HANDOFF_WIDTH = 1.2
# A span shorter than this share of the time axis (2 px of 1,000) is drawn as a tick as well.
_INSTANT_SHARE = 0.002
# The window where several processes counted at once: a light band behind the bars.
_TOGETHER_COLOR = "#F0E442"
# The panel's increments per process: 4 processes × 200,000 locked increments take a few
# seconds on a busy 2-core machine (a contended lock round trip costs several µs).
PANEL_INCREMENTS = (10_000, 50_000, 100_000, 200_000)


def _check_trace(trace) -> Trace:
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a helpers.timeline.Trace, got {type(trace).__name__}")
    return trace


def _check_handoffs(value) -> tuple[str, str] | None:
    if value is None:
        return None
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(label, str) and label for label in value)):
        raise ValueError("handoffs must be None or (wait label, hold label), two span labels, "
                         f"got {value!r}")
    return value[0], value[1]


def plot_story(trace: Trace, ax, lanes: Sequence[str] | None = None, *, title: str | None = None,
               labels: bool = True, handoffs=None):
    """`plot_timeline`, with each span wide enough to read labelled with what it was.

    ``handoffs=(wait_label, hold_label)`` also draws who let whom in: an arrow from the end of
    the `hold_label` span that ended a `wait_label` span (the release) to that wait's end, in
    the waiter's lane (see `primitives.handoffs`). Returns the `TimelineLayout`.
    """
    _check_trace(trace)
    if lanes is not None and (isinstance(lanes, str) or not all(isinstance(x, str)
                                                                 for x in lanes)):
        raise TypeError(f"lanes must be a list of lane names, got {lanes!r}")
    pair = _check_handoffs(handoffs)
    layout = plot_timeline(trace, ax, lanes=lanes, title=title)
    shown = [e for e in trace if e.lane in layout.rows]
    if not shown:
        return layout
    width = max(max(e.end_ns for e in shown) - layout.origin_ns, 1)
    # A span too short to see (an instant: a put() that returns at once) gets a tick.
    layout.ticks([e for e in shown if e.duration_ns < width * _INSTANT_SHARE])
    if labels:
        axis_points = ax.figure.get_size_inches()[0] * ax.get_position().width * 72 * _PLOT_SHARE
        for e in shown:
            text_points = len(e.label) * _CHAR_WIDTH_EM * _LABEL_FONT_SIZE
            if text_points > _LABEL_MARGIN * axis_points * e.duration_ns / width:
                continue
            layout.append(ax.text(layout.x((e.start_ns + e.end_ns) // 2), layout.y(e.lane),
                                  e.label, ha="center", va="center", fontsize=_LABEL_FONT_SIZE,
                                  color="white", clip_on=True))
    if pair is not None:
        for hold, wait in find_handoffs(shown, *pair):
            layout.append(ax.annotate(
                "", xy=(layout.x(wait.end_ns), layout.y(wait.lane)),
                xytext=(layout.x(hold.end_ns), layout.y(hold.lane)),
                arrowprops={"arrowstyle": "->", "color": _HANDOFF_COLOR,
                            "lw": _HANDOFF_WIDTH, "shrinkA": 0, "shrinkB": 0}))
    return layout


def _lane_number(lane: str) -> tuple[int, str]:
    """Sort key: "worker 10 [pid …]" after "worker 2 [pid …]"."""
    words = lane.split()
    return (int(words[1]) if len(words) > 1 and words[1].isdigit() else 0, lane)


def plot_count(result: CountResult, axes) -> list:
    """Left: counted and lost increments; right: when each process was counting, with the
    window where they counted at the same time shaded (only there can additions be lost)."""
    if not isinstance(result, CountResult):
        raise TypeError(f"result must be a CountResult from count_demo, got "
                        f"{type(result).__name__}")
    if len(axes) != 2:
        raise ValueError(f"axes must be two axes (bars, timeline), got {len(axes)}")
    bars_ax, time_ax = axes
    artists = list(bars_ax.bar(["counted", "lost"], [result.final, result.lost],
                               color=["#0072B2", "#D55E00"]))
    artists.append(bars_ax.axhline(result.expected, color="#333333", linestyle="--",
                                   label=f"expected {result.expected:,}"))
    bars_ax.set_ylim(0, result.expected * 1.35)  # room for the legend above the dashed line
    bars_ax.legend(loc="upper right", frameon=False)
    bars_ax.set_title(f"{result.strategy}: {result.lost_fraction:.1%} lost")
    layout = plot_timeline(result.trace, time_ax, legend=False,
                           lanes=sorted(result.trace.lanes(), key=_lane_number),
                           title=f"{result.processes} processes counting")
    artists += layout
    if result.together_ns is not None:
        start, end = result.together_ns
        artists.append(time_ax.axvspan(layout.x(start), layout.x(end), color=_TOGETHER_COLOR,
                                       alpha=0.6, zorder=0, label="counting together"))
        artists.append(time_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0),
                                      frameon=False))
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
