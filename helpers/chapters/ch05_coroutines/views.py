"""Chapter 05's pictures, and its widget panel.

A greenlet recording holds *run* spans only (when each greenlet had the thread). The views add
what a reader wants to see between them: the time a greenlet was switched out, waiting on its
timer or socket (kind ``io``), so a chore that sleeps 1 s shows as a 1 s bar::

    recording (run spans)  ──► with_waits() ──► plot_runs / plot_sleepers / the panel
    film  ▮.............▮        film  ▮▭▭▭▭▭▭▭▭▭▭▭▭▭▮

For 10,000 greenlets one lane each would be unreadable: `plot_sleepers` draws a sample of lanes
and, under it, how many greenlets were alive at each moment (`alive_counts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers.course import check_choice, check_int
from helpers.runners import Run, run_patched
from helpers.timeline import KIND_COLORS, Event, Trace, plot_timeline
from helpers.widgets import Choice, Int, Panel

from .api_demos import producer_consumer
from .asyncio_demos import BLOCKING, run_in_thread, task_demo
from .patching_demos import DISTRIBUTIONS, pool_sleepers

__all__ = ["HUB_LEGEND", "alive_counts", "hub_split", "make_panel", "plot_runs", "plot_sleepers",
           "plot_tasks", "with_waits"]

_LOOP_LANE = "event loop"  # TaskRecorder's lane for the asyncio loop's idle time
_NOT_WAITING = ("main", "hub")  # lanes whose gaps are not waits: the cell itself and the loop
# The panel draws at most this many lanes: more stop being readable at the panel's 4 in height.
_PANEL_LANES = 12
# plot_runs: a timeline is at least 2.2 in tall (title, lanes, time axis), and 0.25 in per lane
# beyond that, so the lane labels (12 pt, about 0.17 in) never overlap.
_MIN_ROW_INCHES = 2.2
_ROW_TITLE_INCHES = 0.8
_LANE_INCHES = 0.25
# The recorder files the hub's time under the kind "idle". Where the demo noted when the loop
# polled (`PollingClock`), the hub's time is split: polling (blocked in the OS, waiting for a
# timer or a socket) stays "idle"; dispatching (running callbacks, timers, waking greenlets)
# becomes "switch". The legend names both for what they are.
HUB_LEGEND = "hub: event loop (polling or dispatching)"
_HUB_NAMES = {"idle": "hub: polling (blocked in the OS)",
              "switch": "hub: dispatching (callbacks, wake-ups)"}


def _check_lanes(name: str, value: object, *, empty: bool) -> tuple[str, ...]:
    """A list of lane names or kinds; a bare string is refused (it would be read per letter)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)) \
            or not all(isinstance(v, str) for v in value) or (not empty and not value):
        allowed = "a list" if empty else "a non-empty list"
        raise ValueError(f"{name} must be {allowed} of names, got {value!r:.80}")
    return tuple(value)


def _check_polling(polling: object) -> list[tuple[int, int]]:
    if polling is None:
        return []
    if isinstance(polling, (str, bytes)) or not isinstance(polling, (list, tuple)) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(t, int) for t in p)
            for p in polling):
        raise ValueError(f"polling must be a list of (start_ns, end_ns) pairs, got {polling!r:.80}")
    return [tuple(p) for p in polling]


def _overlaps(start: int, end: int, intervals: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(max(start, a), min(end, b)) for a, b in intervals if a < end and b > start]


def _split_hub(events: list[Event], polling: Sequence[tuple[int, int]]) -> list[Event]:
    """Each hub span cut into its polling parts (idle) and the rest (switch: dispatching)."""
    polling = sorted(polling)
    out: list[Event] = []
    for event in events:
        if event.lane != "hub":
            out.append(event)
            continue
        cursor = event.start_ns
        for a, b in _overlaps(event.start_ns, event.end_ns, polling):
            if a > cursor:
                out.append(Event("hub", "dispatching", "switch", cursor, a, event.pid))
            out.append(Event("hub", "polling", "idle", a, b, event.pid))
            cursor = b
        if event.end_ns > cursor:
            out.append(Event("hub", "dispatching", "switch", cursor, event.end_ns, event.pid))
    return out


def hub_split(run: Run) -> dict[str, float]:
    """The hub's time in a demo run (ms), split into polling and dispatching, from the loop's
    own prepare/check brackets (`greenlet_demos.PollingClock`)."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a helpers.runners.Run, got {run!r:.80}")
    hub = run.trace.select(lane="hub")
    hub_ns = sum(e.duration_ns for e in hub)
    polling = run.details.get("polling") or []
    polled = sum(b - a for e in hub for a, b in _overlaps(e.start_ns, e.end_ns, polling))
    return {"hub ms": hub_ns / 1e6, "polling ms": polled / 1e6,
            "dispatching ms": (hub_ns - polled) / 1e6}


def _name_the_hub(ax, split: bool) -> None:
    legend = ax.get_legend()
    if legend is not None:
        for text in legend.get_texts():
            if split and text.get_text() in _HUB_NAMES:
                text.set_text(_HUB_NAMES[text.get_text()])
            elif text.get_text() == "idle":
                text.set_text(HUB_LEGEND)


def with_waits(recording: Any, *, skip: Sequence[str] = _NOT_WAITING,
               polling: Sequence[tuple[int, int]] | None = None) -> Trace:
    """The recording plus an ``io`` span in every gap between two run spans of one greenlet;
    with `polling` (a demo's ``details["polling"]``), the hub's spans split in two kinds."""
    if not isinstance(recording, (Trace, list, tuple)):
        raise TypeError(f"recording must be a Trace (or a list of Events), got {recording!r:.80}")
    skip = _check_lanes("skip", skip, empty=True)
    polling = _check_polling(polling)
    trace = Trace().extend(recording)
    if polling:
        trace = Trace().extend(_split_hub(list(trace.events), polling))
    by_lane: dict[str, list[Event]] = {}
    for event in trace.events:
        if event.kind == "run" and event.lane not in skip:
            by_lane.setdefault(event.lane, []).append(event)
    gaps = []
    for lane, runs in by_lane.items():
        runs.sort(key=lambda e: e.start_ns)
        for before, after in zip(runs, runs[1:]):
            if after.start_ns > before.end_ns:
                gaps.append(Event(lane, "switched out", "io", before.end_ns, after.start_ns,
                                  before.pid))
    trace.events.extend(gaps)
    return trace


def alive_counts(recording: Any, *, skip: Sequence[str] = _NOT_WAITING,
                 kinds: Sequence[str] = ("run",)) -> tuple[np.ndarray, np.ndarray]:
    """(times in ns, greenlets alive) as a step function: alive from first to last span."""
    if not isinstance(recording, (Trace, list, tuple)):
        raise TypeError(f"recording must be a Trace (or a list of Events), got {recording!r:.80}")
    skip = _check_lanes("skip", skip, empty=True)
    kinds = _check_lanes("kinds", kinds, empty=False)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for event in Trace().extend(recording).events:
        if event.lane in skip or event.kind not in kinds:
            continue
        first[event.lane] = min(first.get(event.lane, event.start_ns), event.start_ns)
        last[event.lane] = max(last.get(event.lane, event.end_ns), event.end_ns)
    if not first:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    times = np.concatenate([np.fromiter(first.values(), np.int64),
                            np.fromiter(last.values(), np.int64)])
    steps = np.concatenate([np.ones(len(first), np.int64), -np.ones(len(last), np.int64)])
    order = np.argsort(times, kind="stable")
    return times[order], np.cumsum(steps[order])


def _axes(rows: int, axes, height_ratios=None, heights=None):
    """The given axes, or a new figure of `rows` axes sharing time (`heights` in inches each)."""
    if axes is not None:
        return list(axes)
    import matplotlib.pyplot as plt  # only when asked to make a figure

    if heights is not None:
        height_ratios = heights
    total = sum(heights) + 0.6 if heights is not None else 2.2 * rows + 0.6
    _, made = plt.subplots(rows, 1, figsize=(11, total), sharex=True,
                           layout="constrained", height_ratios=height_ratios, squeeze=False)
    return list(made[:, 0])


def _row_height(lanes: int) -> float:
    """Inches for one timeline of `lanes` lanes: room for every lane label, at least 2.2 in."""
    return max(_MIN_ROW_INCHES, _ROW_TITLE_INCHES + _LANE_INCHES * lanes)


def _ticks_visible(layout) -> list:
    """Outline run spans so a switch-in of a few µs still shows as a line at any zoom; name the
    hub's time in the legend for what it is. `layout` is what `plot_timeline` returned: its
    ``artists_by_kind`` says which bars are which, so nothing is guessed from their colour."""
    _name_the_hub(layout.ax, split="switch" in layout.artists_by_kind)
    for artist in layout.artists_by_kind.get("run", []):
        artist.set_edgecolor(KIND_COLORS["run"])
        artist.set_linewidth(0.8)
    return layout


def plot_runs(runs: dict[str, Any], axes=None) -> list:
    """One timeline per run, titled with its wall time. Returns the artists.

    A run is a `helpers.runners.Run` (a gevent demo in the kernel, or a patched child's).
    Without `axes`, each timeline gets a height that fits its lanes, and only the bottom one
    labels the shared time axis.
    """
    if not isinstance(runs, dict) or not runs or not all(isinstance(r, Run) for r in runs.values()):
        raise ValueError(f"runs must be a non-empty dict of title -> Run, got {runs!r:.80}")
    traces = [with_waits(run.trace, polling=run.details.get("polling"))
              for run in runs.values()]
    made = axes is None
    axes = _axes(len(runs), axes, heights=[_row_height(len(t.lanes())) for t in traces])
    artists = []
    for ax, (title, run), trace in zip(axes, runs.items(), traces):
        artists += _ticks_visible(plot_timeline(trace, ax, title=f"{title}: {run.seconds:.2f} s"))
    if made:
        for ax in axes[:-1]:
            ax.set_xlabel("")  # the axes share time; the bottom one labels it
    return artists


def plot_tasks(recordings: dict[str, Trace], axes=None) -> list:
    """One timeline per asyncio recording (`helpers.timeline.TaskRecorder`), with the time each
    task was switched out drawn between its steps. Returns the artists."""
    if not isinstance(recordings, dict) or not recordings or not all(
            isinstance(t, Trace) for t in recordings.values()):
        raise ValueError(f"recordings must be a non-empty dict of title -> Trace, "
                         f"got {recordings!r:.80}")
    traces = [with_waits(t, skip=(_LOOP_LANE,)) for t in recordings.values()]
    made = axes is None
    axes = _axes(len(traces), axes, heights=[_row_height(len(t.lanes())) for t in traces])
    artists = []
    for ax, title, trace in zip(axes, recordings, traces):
        artists += _ticks_visible(plot_timeline(trace, ax, title=title))
    if made:
        for ax in axes[:-1]:
            ax.set_xlabel("")
    return artists


def plot_sleepers(run: Run, axes=None, *, sample: int = 8) -> list:
    """A sample of lanes (first greenlets, main, hub) above the count of greenlets alive."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a helpers.runners.Run, got {run!r:.80}")
    check_int("sample", sample, 1, 100)
    axes = _axes(2, axes, height_ratios=(3, 2))
    trace = with_waits(run.trace, polling=run.details.get("polling"))
    greenlets = [lane for lane in trace.lanes() if lane not in _NOT_WAITING]
    lanes = [lane for lane in ("main", "hub") if lane in trace.lanes()] + greenlets[:sample]
    layout = _ticks_visible(plot_timeline(
        trace, axes[0], lanes=lanes, origin_ns=trace.start_ns,
        title=f"{len(greenlets):,} greenlets (the first {min(sample, len(greenlets))} drawn): "
              f"{run.seconds:.2f} s",
    ))
    axes[0].set_xlabel("")  # the count below carries the time axis
    artists = list(layout)
    times, alive = alive_counts(run.trace)
    axes[1].step(layout.x(times), alive, where="post", color="#0072B2")  # the same time zero
    axes[1].set_ylabel("greenlets alive")
    axes[1].set_xlabel("time (ms)")
    axes[1].grid(alpha=0.3)
    artists.append(axes[1].lines[-1])
    return artists


# -- the panel ----------------------------------------------------------------------------------
def _panel_demo(fig, progress, *, greenlets: int, sleep: str, mean_sleep: float, pool_size: int,
                patched: bool) -> str:
    progress(0.1, "starting a child Python…")
    run = run_patched(pool_sleepers, greenlets, sleep, mean_sleep, pool_size, patch=patched,
                      timeout=60)
    progress(0.8, "drawing…")
    trace = with_waits(run.trace)
    value = run.value
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    # The tasks that slept: one skipped for the time budget only ran long enough to return.
    slept = {e.lane for e in trace.events if e.kind == "io" and e.label == "sleep"}
    tasks = [lane for lane in trace.lanes() if lane.startswith("task ") and lane in slept]
    layout = _ticks_visible(plot_timeline(
        trace, top, lanes=tasks[:_PANEL_LANES], origin_ns=trace.start_ns,
        title=f"{'patched' if patched else 'NOT patched'}: {value['ran']} tasks in "
              f"{value['seconds']:.2f} s (pool of {pool_size}; "
              f"first {min(_PANEL_LANES, len(tasks))} drawn)"))
    top.set_xlabel("")
    times, alive = alive_counts(run.trace, kinds=("io",), skip=())
    bottom.step(layout.x(times), alive, where="post", color="#0072B2")  # the same time zero
    bottom.set_ylabel("sleeping\nat once")
    bottom.set_xlabel("time (ms)")
    bottom.grid(alpha=0.3)
    skipped = f"; {value['skipped']} not started (time budget)" if value["skipped"] else ""
    return (f"{value['ran']} tasks, sum of their sleeps {value['sum of sleeps']:.2f} s, longest "
            f"{value['longest sleep']:.2f} s: took {value['seconds']:.2f} s{skipped}. "
            f"Most sleeping at once: {int(alive.max()) if len(alive) else 0}.")


def _queue_demo(fig, progress, *, items: int, consumers: int, maxsize: int,
                work_ms: float) -> str:
    progress(0.1, "running the producer and the consumers…")
    run = producer_consumer(items=items, consumers=consumers, maxsize=maxsize,
                            work_seconds=work_ms / 1000)
    lanes = len(with_waits(run.trace).lanes())
    fig.set_size_inches(11, _row_height(lanes) + 0.6)
    plot_runs({f"{items} items, {consumers} consumers, Queue(maxsize={maxsize})": run},
              [fig.subplots()])
    per = {name: len(done) for name, done in run.value.items()}
    return (f"{items} items in {run.seconds:.2f} s; items per consumer {per}; the ideal with "
            f"{consumers} consumers is about {items * work_ms / 1000 / consumers:.2f} s")


def _asyncio_demo(fig, progress, *, tasks: int, limit: int, blocking: str) -> str:
    progress(0.1, "running the tasks on a fresh event loop…")
    trace, measured = run_in_thread(task_demo, tasks, limit, blocking, timeout=60)
    lanes = len(trace.lanes())
    fig.set_size_inches(11, _row_height(lanes) + 0.6)
    title = f"{tasks} tasks, Semaphore({limit}), blocking: {blocking}"
    plot_tasks({f"{title}: {measured['seconds']:.2f} s": trace}, [fig.subplots()])
    return (f"{tasks} tasks of 3 × 50 ms through Semaphore({limit}) in "
            f"{measured['seconds']:.2f} s; at most {measured['most at once']} at once")


PARTS = ("coroutines", "gevent_api", "asyncio")


def make_panel(part: str = "coroutines") -> Panel:
    """The chapter's panels. ``"coroutines"`` (05b_patching): tasks sleeping with plain
    ``time.sleep`` in a ``Pool``, in a child, patched or not. ``"gevent_api"`` (05c_gevent_api):
    a producer and consumers around a bounded ``Queue``, in this kernel. ``"asyncio"``
    (05d_asyncio): tasks through a ``Semaphore`` beside a task that blocks the loop or a thread,
    on a fresh event loop in a thread (a button's callback cannot await the kernel's loop)."""
    check_choice("part", part, PARTS)
    if part == "asyncio":
        return Panel(
            "asyncio: tasks through a Semaphore, beside a task that blocks or not",
            [
                Int("tasks", 1, 40, default=8),
                Int("limit", 1, 40, default=3, label="Semaphore size"),
                Choice("blocking", list(BLOCKING), default="none", label="blocking task"),
            ],
            _asyncio_demo,
        )
    if part == "gevent_api":
        return Panel(
            "gevent: a producer, consumers and a bounded Queue",
            [
                Int("items", 1, 200, default=24),
                Int("consumers", 1, 20, default=3),
                Int("maxsize", 1, 50, default=2, label="queue maxsize"),
                Choice("work_ms", [5, 10, 20, 50, 100], default=20, label="work per item (ms)"),
            ],
            _queue_demo,
        )
    return Panel(
        "gevent: sleepers through a pool, in a child process",
        [
            Int("greenlets", 1, 1000, default=100),
            Choice("sleep", list(DISTRIBUTIONS), default="uniform", label="sleep distribution"),
            Choice("mean_sleep", [0.01, 0.05, 0.1, 0.2, 0.5], default=0.1, label="mean sleep (s)"),
            Int("pool_size", 1, 1000, default=20, label="pool size"),
            Choice("patched", [True, False], default=True, label="monkey-patched"),
        ],
        _panel_demo,
    )
