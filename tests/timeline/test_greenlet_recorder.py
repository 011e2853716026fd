"""GreenletRecorder: run spans per greenlet, one thread's spans never overlap, hub idle time, the
previous trace function still called, references dropped after the recording is built."""

from __future__ import annotations

import gc
import pickle
import weakref

import gevent
import greenlet
import pytest

from helpers.timeline import GreenletRecorder, Trace

pytestmark = pytest.mark.timeout(60)


def _named(name, function, *args):
    glet = gevent.Greenlet(function, *args)
    glet.name = name
    glet.start()
    return glet


def _record(body):
    with GreenletRecorder() as recorder:
        body()
    return recorder, Trace().extend(recorder.recording())


def test_one_lane_per_greenlet_with_run_spans_in_spawn_order():
    def body():
        gevent.joinall([_named(n, gevent.sleep, s) for n, s in (("a", 0.03), ("b", 0.02))])

    recorder, trace = _record(body)
    assert {"main", "hub", "a", "b"} <= set(trace.lanes())
    first_run = {lane: min(e.start_ns for e in trace.select(lane=lane)) for lane in ("a", "b")}
    assert first_run["a"] < first_run["b"]  # spawned first, run first: the hub is FIFO
    for lane in ("a", "b"):
        spans = trace.select(lane=lane)
        assert len(spans) >= 2  # started, went to sleep; woke, finished
        assert {e.kind for e in spans} == {"run"}
    # b wakes before a (shorter sleep): its last span ends first
    assert max(e.end_ns for e in trace.select(lane="b")) < max(
        e.end_ns for e in trace.select(lane="a"))
    assert recorder.switches == len(trace.events) - 1


def test_spans_of_one_thread_never_overlap_and_tile_the_run():
    def body():
        gevent.joinall([gevent.spawn(gevent.sleep, 0.001 * (i % 3)) for i in range(50)])

    _, trace = _record(body)
    spans = sorted(trace.events, key=lambda e: e.start_ns)
    for before, after in zip(spans, spans[1:]):
        assert after.start_ns == before.end_ns  # one thread: exactly one greenlet at a time


def test_hub_idle_time_is_the_waiting():
    def body():
        gevent.joinall([gevent.spawn(gevent.sleep, 0.1) for _ in range(3)])

    _, trace = _record(body)
    idle = trace.busy_ns("hub", "idle")
    assert not trace.select(lane="hub", kind="run")
    assert idle >= 0.7 * trace.duration_ns  # three 100 ms sleeps at once: mostly waiting
    assert 0.09e9 <= trace.duration_ns <= 0.5e9


def test_previous_trace_function_is_kept_and_called():
    seen = []

    def previous(event, args):
        seen.append((event, args[1]))

    old = greenlet.settrace(previous)
    try:
        with GreenletRecorder() as recorder:
            gevent.joinall([gevent.spawn(gevent.sleep, 0) for _ in range(3)])
        assert greenlet.gettrace() is previous
        assert len(seen) == recorder.switches > 0
    finally:
        greenlet.settrace(old)


def test_killed_greenlet_throw_event_is_recorded():
    def body():
        victim = _named("victim", gevent.sleep, 10)
        gevent.sleep(0.01)
        victim.kill()  # delivered as a 'throw' switch
        assert victim.dead

    _, trace = _record(body)
    assert len(trace.select(lane="victim")) >= 2


def test_one_run_per_recorder_and_recording_needs_a_run():
    recorder = GreenletRecorder()
    with pytest.raises(RuntimeError, match="with"):
        recorder.recording()
    with recorder:
        gevent.sleep(0)
    with pytest.raises(RuntimeError, match="one run"):
        recorder.__enter__()


def test_recording_pickles_and_releases_greenlets():
    with GreenletRecorder() as recorder:
        glet = gevent.spawn(gevent.sleep, 0)
        glet.join()
        gevent.sleep(0)  # gevent itself lets go of a finished greenlet on the next hub cycle
    ref = weakref.ref(glet)
    recording = recorder.recording()
    del glet
    gc.collect()
    assert ref() is None  # the recorder no longer holds the finished greenlet
    assert recorder.recording() is recording
    assert len(pickle.loads(pickle.dumps(recording)).events) == len(recording.events)
