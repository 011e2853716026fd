"""The timeline engine: the event model, the recorders, drawing and export."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import matplotlib
import pytest
from _timing import requires_cores

matplotlib.use("Agg")  # the tests draw off-screen; notebooks keep their own backend
from matplotlib.figure import Figure  # noqa: E402

from helpers.course import mp_context, quiet_fork_warnings  # noqa: E402
from helpers.timeline import (  # noqa: E402
    KINDS,
    Event,
    Recorder,
    Trace,
    Traced,
    TracedResult,
    plot_timeline,
    to_chrome_trace,
)
from helpers.workloads import cpu_task, iterations_for  # noqa: E402


# -- the event model ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("lane", {"lane": ""}),
        ("lane", {"lane": 3}),
        ("label", {"label": None}),
        ("kind", {"kind": "sleeping"}),
        ("start_ns", {"start_ns": -1}),
        ("start_ns", {"start_ns": 1.5}),
        ("end_ns", {"end_ns": 5}),
        ("pid", {"pid": -2}),
        ("cpu", {"cpu": "0"}),
        ("start_ns", {"start_ns": True}),
    ],
)
def test_malformed_event_names_the_field(field, kwargs):
    good = {"lane": "w", "label": "t", "kind": "run", "start_ns": 10, "end_ns": 20}
    with pytest.raises(ValueError, match=repr(field)):
        Event(**{**good, **kwargs})


def test_trace_answers_overlap_busy_time_lanes_and_cpus():
    trace = Trace([
        Event("b", "x", "run", 50, 150, 2, 1),
        Event("a", "x", "run", 0, 100, 1, 0),
        Event("a", "y", "io", 100, 200, 1, 0),
        Event("b", "y", "run", 180, 300, 2, 0),
    ])
    assert trace.lanes() == ["a", "b"]  # by first event
    assert trace.overlap_ns("a", "b") == 50
    assert trace.busy_ns("b") == 220
    assert trace.busy_ns("a", "io") == 100
    assert trace.duration_ns == 300
    assert trace.cpus("b") == [0, 1]  # most time first
    with pytest.raises(ValueError, match="Event"):
        trace.add(("a", "x"))


# -- recorders ---------------------------------------------------------------------------------
def test_recorder_records_spans_in_order_with_pid_and_cpu():
    rec = Recorder("me")
    with rec.span("first"):
        cpu_task(1000)
    with rec.span("second", "io"):
        time.sleep(0.001)
    events = rec.recording().events
    assert [(e.label, e.kind) for e in events] == [("first", "run"), ("second", "io")]
    assert events[0].end_ns <= events[1].start_ns
    assert all(e.pid == os.getpid() for e in events)
    if hasattr(__import__("psutil").Process(), "cpu_num"):
        assert all(isinstance(e.cpu, int) for e in events)


def test_thread_recorders_give_one_lane_per_thread():
    recordings = []

    def work():
        rec = Recorder.for_thread(cpus=False)
        with rec.span("sleep", "io"):
            time.sleep(0.05)
        recordings.append(rec.recording())

    threads = [threading.Thread(target=work, name=f"t{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    trace = Trace()
    for r in recordings:
        trace.extend(r)
    a, b = trace.lanes()
    assert a.startswith("t") and b.startswith("t") and a != b
    assert trace.overlap_ns(a, b, "io") > 0.02e9  # both slept at once


@pytest.mark.timeout(60)
def test_process_recorder_ships_events_back_once_per_task(start_method):
    """Two CPU tasks in two processes: recorded in the children, merged, and they overlap."""
    n = iterations_for(0.15)
    # Under fork, the "multi-threaded process" DeprecationWarning of 3.12+ is captured, as the
    # course's runners do: pytest's own threads make this process multi-threaded.
    with quiet_fork_warnings(start_method), \
            ProcessPoolExecutor(2, mp_context=mp_context(start_method)) as pool:
        results = list(pool.map(Traced(cpu_task), [n, n], timeout=30))
    assert all(isinstance(r, TracedResult) for r in results)
    assert [r.value for r in results] == [cpu_task(n)] * 2
    trace = Trace()
    for r in results:
        trace.extend(r.recording)
    pids = {e.pid for e in trace}
    assert os.getpid() not in pids
    assert len(trace) == 2 and all(e.label.startswith("cpu_task(") for e in trace)
    assert set(trace.clocks) == pids
    if len(pids) == 2:  # the pool may have given both tasks to one worker
        a, b = trace.lanes()
        assert trace.overlap_ns(a, b) > 0


def test_traced_rejects_non_callables():
    with pytest.raises(TypeError, match="fn"):
        Traced(42)


def test_a_traced_result_crosses_a_pipe_small_and_whole():
    """A pool pickles one result per task; a pipe holds 64 KiB, and results much bigger than the
    value fill it and stall the workers (chapter 04's chunksize demo took 50 s that way)."""
    import pickle

    result = Traced(cpu_task, label="task 7")(1000)
    back = pickle.loads(pickle.dumps(result))
    assert back == result and back.value == cpu_task(1000)
    (event,) = back.recording.events
    assert (event.label, event.kind, event.pid) == ("task 7", "run", os.getpid())
    assert back.recording.clocks == result.recording.clocks
    assert list(back.recording.clocks) == [os.getpid()]
    # the value, one tuple of fields, the clock pair and one global: the dataclasses' own
    # pickling took over 260 bytes here
    assert len(pickle.dumps(result)) <= 200
    # one built from a Trace pickles the same way
    rebuilt = pickle.loads(pickle.dumps(TracedResult(7, back.recording)))
    assert rebuilt == TracedResult(7, back.recording)


def test_one_span_names_a_bad_field():
    with pytest.raises(ValueError, match="label"):
        TracedResult.one_span(1, None, 0, 1)
    with pytest.raises(ValueError, match="end_ns"):
        TracedResult.one_span(1, "x", 5, 1)
    with pytest.raises(ValueError, match="kind"):
        TracedResult.one_span(1, "x", 0, 1, kind="nap")


# -- drawing and export ------------------------------------------------------------------------
def _many_events(n: int) -> list[Event]:
    return [Event(f"w{i % 4}", "t", KINDS[i % 4], i * 1000, i * 1000 + 700, 1, i % 2)
            for i in range(n)]


def test_plot_draws_one_lane_per_worker_and_a_legend():
    fig = Figure()
    ax = fig.subplots()
    artists = plot_timeline(_many_events(40), ax, title="t")
    assert [t.get_text().split("\n")[0] for t in ax.get_yticklabels()] == ["w0", "w1", "w2", "w3"]
    assert ax.get_legend() is not None
    assert {t.get_text() for t in ax.get_legend().get_texts()} == set(KINDS[:4])
    assert len(artists) == 4 * 1 + 1  # each lane has one kind here, plus the legend
    assert ax.get_xlabel() == "time (ms)"


def test_plot_colours_by_cpu():
    ax = Figure().subplots()
    plot_timeline(_many_events(40), ax, color_by="cpu")
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"cpu 0", "cpu 1"}
    with pytest.raises(ValueError, match="color_by"):
        plot_timeline([], ax, color_by="lane")


def test_empty_trace_draws_an_empty_labelled_chart():
    ax = Figure().subplots()
    artists = plot_timeline(Trace(), ax)
    assert ax.get_xlabel() == "time (ms)"
    assert any(getattr(a, "get_text", lambda: "")() == "no events recorded" for a in artists)


def test_plot_draws_100k_spans_quickly():
    events = _many_events(100_000)
    fig = Figure(figsize=(11, 4))
    started = time.perf_counter()
    plot_timeline(events, fig.subplots())
    fig.canvas.draw()
    assert time.perf_counter() - started < 3.0  # bar: 1 s (make bench); loose for a busy CI


def test_plotting_changes_no_global_matplotlib_state():
    before = dict(matplotlib.rcParams)
    plot_timeline(_many_events(10), Figure().subplots())
    assert dict(matplotlib.rcParams) == before


def test_chrome_trace_has_one_complete_event_per_span(tmp_path):
    trace = Trace(_many_events(10))
    path = tmp_path / "t.json"
    document = to_chrome_trace(trace, path)
    assert json.loads(path.read_text()) == document
    spans = [r for r in document["traceEvents"] if r["ph"] == "X"]
    names = [r for r in document["traceEvents"] if r["name"] == "thread_name"]
    assert len(spans) == 10 and spans[0]["ts"] == 0 and spans[0]["dur"] == 0.7
    assert {r["args"]["name"] for r in names} == {"w0", "w1", "w2", "w3"}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux to pin threads")
@requires_cores(2)  # two cores to pin the threads apart
def test_current_cpu_is_the_calling_threads_own_core():
    from helpers.timeline import current_cpu

    cores = sorted(os.sched_getaffinity(0))[:2]
    seen: dict[int, set[int | None]] = {}

    def pinned(core: int) -> None:
        os.sched_setaffinity(0, {core})  # 0: the calling thread only, on Linux
        seen[core] = set()
        # 600 calls in all: the first few hundred read /proc, the rest ask sched_getcpu().
        for _ in range(300):
            seen[core].add(current_cpu())

    for core in cores:  # the main thread stays where it is; each thread reports its own core
        thread = threading.Thread(target=pinned, args=(core,))
        thread.start()
        thread.join(10)
    assert seen == {core: {core} for core in cores}


def test_plot_timeline_returns_its_layout_for_overlays():
    from matplotlib.figure import Figure

    events = [Event("a", "t", "run", 0, 2_000_000), Event("b", "t", "wait", 1_000_000, 3_000_000)]
    layout = plot_timeline(events, Figure().subplots(), legend=False)
    assert layout.rows == {"a": 0, "b": 1} and layout.origin_ns == 0
    assert layout.x(1_000_000) == 1.0 and layout.y("b") == 1
    assert set(layout.artists_by_kind) == {"run", "wait"}
    before = len(layout)
    added = layout.mark([Event("b", "send", "send", 1_500_000, 2_000_000)], hatch="//")
    ticks = layout.ticks([Event("a", "w", "wait", 500_000, 600_000)])
    assert len(layout) == before + len(added) + len(ticks) == before + 2


def test_the_clock_pair_keeps_the_tightest_bracket_of_its_reads():
    from helpers.timeline import clock_pair

    # First try: preempted 10 ms between the perf reads; second: 1 µs; third: 5 µs. The clocks
    # are the test's own: nothing else in the process sees them.
    perf = iter([0, 10_000_000, 20_000_000, 20_001_000, 30_000_000, 30_005_000])
    epoch = iter([1_000_000_000, 1_020_000_500, 1_030_002_500])
    assert clock_pair(lambda: next(perf), lambda: next(epoch)) == (20_000_500, 1_020_000_500)
    # With the real clocks: read again at once, both moved by the same amount, to well within a
    # millisecond (the closest of a few reads: one may be preempted on a busy machine).
    perf_ns, epoch_ns = clock_pair()
    drift = min(abs((time.time_ns() - epoch_ns) - (time.perf_counter_ns() - perf_ns))
                for _ in range(5))
    assert drift < 1_000_000


def test_back_to_back_spans_stay_countable_and_invisible_ones_merge():
    """16 tasks run back to back on 2 workers draw 16 bars, each with a white edge (a boundary the
    eye can count); 10,000 spans far under a pixel still merge into a few bars."""
    plt = pytest.importorskip("matplotlib.pyplot")
    events = []
    for worker in range(2):
        t = 0
        for task in range(8):
            length = (30 + 5 * task) * 1_000_000
            events.append(Event(f"W{worker}", f"t{task}", "run", t, t + length, 1 + worker, None))
            t += length + 10_000  # a 10 µs hand-over: far under a pixel of this run
    fig, ax = plt.subplots()
    try:
        layout = plot_timeline(Trace(events), ax, legend=False)
        bars = layout.artists_by_kind["run"]
        assert sum(len(b.get_paths()) for b in bars) == 16
        assert all(w > 0 for b in bars for w in b.get_linewidths())
        tiny = [Event("W0", "t", "run", i * 1000, i * 1000 + 900, 1, None) for i in range(10_000)]
        tiny.append(Event("W0", "long", "run", 0, 10**9, 1, None))
        ax.clear()
        layout = plot_timeline(Trace(tiny[-1:] + tiny[:-1]), ax, legend=False)
        assert sum(len(b.get_paths()) for b in layout.artists_by_kind["run"]) <= 3
    finally:
        plt.close(fig)
