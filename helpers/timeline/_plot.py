"""Drawing a trace: one lane per worker, one colour per kind, time in ms from the first event.

The drawing is built to stay fast on big traces: spans too short to see (under two pixels) that
would fall on the same pixel are merged first (what cannot be seen is not drawn), and each
lane/kind group is one `broken_barh` collection, so 100,000 spans draw in a fraction of a second.

Spans wide enough to see are never merged, and each gets a thin white edge: tasks that run back
to back on one worker stay countable, so "16 tasks on 2 workers" shows 16 bars, not a few blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ._events import KINDS, Event, Trace

if TYPE_CHECKING:
    import numpy as np

__all__ = ["KIND_COLORS", "MODEL_COLORS", "TimelineLayout", "model_color", "plot_timeline"]

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies and on a projector.
KIND_COLORS = {
    "run": "#0072B2",
    "io": "#56B4E9",
    "wait": "#E69F00",
    "lock": "#D55E00",
    "send": "#CC79A7",
    "start": "#009E73",
    "idle": "#D9D9D9",
    "switch": "#000000",
}
# One colour per model, the same in every chapter's bars and curves (Okabe-Ito again; grey for
# serial, the baseline). A model not listed here (a reader's own) is drawn in `_OTHER_MODEL_COLOR`.
MODEL_COLORS = {
    "serial": "#999999",
    "threads": "#E69F00",
    "processes": "#0072B2",
    "pool": "#56B4E9",
    "gevent": "#009E73",
    "asyncio": "#CC79A7",
    "gevent-in-processes": "#000000",
    "dask": "#D55E00",
}
_OTHER_MODEL_COLOR = "#777777"
_CPU_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442")

# A timeline is drawn about 1,000 px wide: spans closer than 1/1,000 of the whole run would share
# a pixel anyway, so they are merged, and a shorter span is widened to one pixel so it still shows.
_PIXELS = 1000
# A span at least this many pixels wide is drawn on its own with a white edge, so neighbours that
# touch stay apart; narrower ones merge with their neighbours (an edge would hide them).
_VISIBLE_PIXELS = 2
# The white edge, in points: about one pixel at the 100 dpi a notebook draws at.
_EDGE_POINTS = 0.8
_FONT_SIZE = 12  # readable from the back of a classroom
_LANE_HEIGHT_IN = 0.5


def model_color(name: str) -> str:
    """The colour of the model `name` wherever the course draws models side by side
    (`MODEL_COLORS`); any other name, a reader's own model, gets one grey of its own."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a model's name (str), got {type(name).__name__}")
    return MODEL_COLORS.get(name, _OTHER_MODEL_COLOR)


def _as_events(trace: Trace | Iterable[Event]) -> list[Event]:
    return list(trace.events if isinstance(trace, Trace) else trace)


def _lane_order(events: Sequence[Event]) -> list[str]:
    return Trace(list(events)).lanes()


def _bars(starts: np.ndarray, ends: np.ndarray, resolution: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, edge widths): spans as (x, width) rows, each visible span on its own, the others
    merged with near neighbours; visible rows get a white edge, so touching bars stay apart."""
    import numpy as np

    visible = (ends - starts) >= _VISIBLE_PIXELS * resolution
    rows = [np.column_stack([starts[visible], ends[visible] - starts[visible]])]
    if (~visible).any():
        rows.append(_merge_subpixel(starts[~visible], ends[~visible], resolution))
    bars = np.concatenate(rows)
    bars = bars[np.argsort(bars[:, 0], kind="stable")]
    edges = np.where(bars[:, 1] >= _VISIBLE_PIXELS * resolution, _EDGE_POINTS, 0.0)
    return bars, edges


def _merge_subpixel(starts: np.ndarray, ends: np.ndarray, resolution: float) -> np.ndarray:
    """Spans as (x, width) rows, neighbours closer than `resolution` merged, widths ≥ resolution."""
    import numpy as np

    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    new_group = np.empty(len(starts), dtype=bool)
    new_group[0] = True
    new_group[1:] = starts[1:] > reach[:-1] + resolution
    first = np.flatnonzero(new_group)
    group_start = starts[first]
    group_end = np.maximum.reduceat(ends, first)
    widths = np.maximum(group_end - group_start, resolution)
    return np.column_stack([group_start, widths])


class TimelineLayout(list):
    """What `plot_timeline` drew, and where: a list of its artists, plus the geometry overlays need.

    ``rows`` maps each lane to its row (0 at the top); ``origin_ns`` is time zero of the x axis
    (in ms); ``artists_by_kind`` maps a kind (or a core, with ``color_by="cpu"``) to its bars.
    An overlay — the hatched start of a process, a tick per wait, a ``send`` or ``lock`` mark —
    draws at ``layout.x(ns)``, ``layout.y(lane)`` instead of guessing from the picture.
    """

    def __init__(self, ax, rows: dict[str, int], origin_ns: int) -> None:
        if not isinstance(rows, dict):
            raise TypeError(f"rows must be a dict of lane -> row, got {rows!r}")
        super().__init__()
        self.ax = ax
        self.rows = rows
        self.origin_ns = origin_ns
        self.artists_by_kind: dict[object, list] = {}

    def x(self, ns: int) -> float:
        """The x coordinate (ms from the origin) of a `perf_counter_ns` time."""
        return (ns - self.origin_ns) / 1e6

    def y(self, lane: str) -> int:
        """The row of `lane` (KeyError naming it if the lane is not drawn)."""
        return self.rows[lane]

    def mark(self, events: Iterable[Event], *, height: float = 0.8, **style) -> list:
        """Draw `events` over their lanes as outlined or hatched bars; return the artists added.

        ``style`` goes to ``broken_barh`` (e.g. ``hatch="///", facecolors="none"``).
        """
        added = []
        by_lane: dict[str, list[Event]] = {}
        for e in events:
            if e.lane in self.rows:
                by_lane.setdefault(e.lane, []).append(e)
        for lane, group in by_lane.items():
            spans = [(self.x(e.start_ns), max(e.duration_ns / 1e6, 1e-6)) for e in group]
            added.append(self.ax.broken_barh(spans, (self.rows[lane] - height / 2, height),
                                             **style))
        self.extend(added)
        return added

    def ticks(self, events: Iterable[Event], *, color: str = "#222222", **style) -> list:
        """Draw one short vertical tick at the start of each event (a wait, a send); return them."""
        xs, ys = [], []
        for e in events:
            if e.lane in self.rows:
                xs.append(self.x(e.start_ns))
                ys.append(self.rows[e.lane])
        if not xs:
            return []
        added = [self.ax.scatter(xs, ys, marker="|", s=120, color=color, zorder=3, **style)]
        self.extend(added)
        return added


def plot_timeline(
    trace: Trace | Iterable[Event],
    ax=None,
    *,
    title: str | None = None,
    color_by: str = "kind",
    lanes: Sequence[str] | None = None,
    origin_ns: int | None = None,
    legend: bool = True,
):
    """Draw `trace` on `ax` (a new figure when None); return its `TimelineLayout` (the artists).

    ``color_by="kind"`` colours what each worker was doing (run, io, wait, lock…);
    ``color_by="cpu"`` colours which core it ran on, to show placement on real cores.
    ``lanes`` picks and orders the lanes; ``origin_ns`` sets time zero (default: the first event).
    """
    if color_by not in ("kind", "cpu"):
        raise ValueError(f"color_by must be 'kind' or 'cpu', got {color_by!r}")
    events = _as_events(trace)
    if ax is None:
        import matplotlib.pyplot as plt  # only when asked to make a figure: no import-time state

        n_lanes = len(lanes) if lanes is not None else len({e.lane for e in events})
        _, ax = plt.subplots(figsize=(11, 1.6 + _LANE_HEIGHT_IN * max(n_lanes, 1)))

    order = list(lanes) if lanes is not None else _lane_order(events)
    row = {lane: i for i, lane in enumerate(order)}
    events = [e for e in events if e.lane in row]
    origin = origin_ns if origin_ns is not None else min((e.start_ns for e in events), default=0)
    end = max((e.end_ns for e in events), default=origin)
    resolution = max(end - origin, 1) / _PIXELS / 1e6  # in ms

    groups: dict[tuple[str, object], list[Event]] = {}
    for e in events:
        key = e.kind if color_by == "kind" else e.cpu
        groups.setdefault((e.lane, key), []).append(e)

    import numpy as np  # here, not at import: worker processes import the recorders, not this

    artists = TimelineLayout(ax, row, origin)
    labelled: set[object] = set()
    for (lane, key), group in sorted(groups.items(), key=lambda kv: (row[kv[0][0]], str(kv[0][1]))):
        starts = (np.fromiter((e.start_ns for e in group), np.int64, len(group)) - origin) / 1e6
        ends = (np.fromiter((e.end_ns for e in group), np.int64, len(group)) - origin) / 1e6
        if color_by == "kind":
            color, name = KIND_COLORS[key], key
        else:
            color = "#999999" if key is None else _CPU_COLORS[key % len(_CPU_COLORS)]
            name = "core unknown" if key is None else f"cpu {key}"
        height = 0.3 if key == "switch" else 0.8
        rows_xw, edges = _bars(starts, ends, resolution)
        bars = ax.broken_barh(
            rows_xw,
            (row[lane] - height / 2, height),
            facecolors=color,
            edgecolors="white",
            linewidths=edges,
            label=None if name in labelled else name,
        )
        labelled.add(name)
        artists.append(bars)
        artists.artists_by_kind.setdefault(key, []).append(bars)

    cpus_of: dict[str, set[int]] = {}
    for e in events:
        if e.cpu is not None:
            cpus_of.setdefault(e.lane, set()).add(e.cpu)
    ax.set_yticks(range(len(order)), [_lane_label(lane, cpus_of.get(lane)) for lane in order])
    ax.set_ylim(len(order) - 0.4 if order else 1, -0.6)
    ax.set_xlabel("time (ms)", fontsize=_FONT_SIZE)
    ax.tick_params(labelsize=_FONT_SIZE)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if title:
        ax.set_title(title, fontsize=_FONT_SIZE + 2)
    if not events:
        ax.set_xlim(0, 1)
        artists.append(
            ax.text(0.5, 0.5, "no events recorded", ha="center", va="center",
                    transform=ax.transAxes, fontsize=_FONT_SIZE, color="#666666")
        )
    elif legend:
        handles, names = ax.get_legend_handles_labels()
        ordered = sorted(zip(names, handles), key=lambda nh: _legend_rank(nh[0]))
        artists.append(
            ax.legend([h for _, h in ordered], [n for n, _ in ordered], loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), fontsize=_FONT_SIZE - 1, frameon=False)
        )
    return artists


def _legend_rank(name: str) -> tuple[int, str]:
    return (KINDS.index(name), name) if name in KINDS else (len(KINDS), name)


def _lane_label(lane: str, cpus: set[int] | None) -> str:
    if not cpus:
        return lane
    shown = ",".join(str(c) for c in sorted(cpus)[:4]) + ("…" if len(cpus) > 4 else "")
    return f"{lane}\ncpu {shown}"
