"""Chapter 03: garbled printing, lost updates, the primitives on the timeline, deadlocks, a killed
holder — each asserted from what the worker processes really did (their recorded spans, the
counter's final value, the printed file), under fork, spawn and forkserver where it matters."""

from __future__ import annotations

import os
import threading
import time

import pytest

from helpers.chapters.ch03_locks import (
    Workers,
    compare_strategies,
    consume,
    count_demo,
    count_lines,
    deadlock_demo,
    handoffs,
    in_phases,
    killed_holder,
    killed_writer,
    limited,
    make_panel,
    most_at_once,
    nested,
    plot_count,
    plot_story,
    prepare_then_signal,
    print_demo,
    print_into,
    produce,
    take_turns,
    wait_for_signal,
    waits,
)
from helpers.runners import Failure

# Lost updates and garbled lines need the workers to overlap in time; on a machine shared with
# other jobs one run may not, so an effect that must appear gets this many tries.
_TRIES = 3


def _until(make, test, tries=_TRIES):
    for _ in range(tries):
        result = make()
        if test(result):
            return result
    return result


# -- printing ---------------------------------------------------------------------------------
def test_count_lines_tells_whole_from_broken():
    text = ("worker 1 says hello, line 0\n"
            "worker worker 2 says hello, line 01 says hello, line 0\n\n"
            "worker 2 says hello, line 1\n")
    whole, broken, missing = count_lines(text, workers=2, lines=2)
    assert whole == 2  # worker 1 line 0, worker 2 line 1
    assert broken == 2  # the mixed line, and the newline torn from its line
    assert missing == 2  # worker 1 line 1 and worker 2 line 0 never appear whole


def test_printing_is_garbled_without_a_lock_and_whole_with_one(start_method):
    garbled = _until(lambda: print_demo(3, 1000, start_method=start_method),
                     lambda r: r.broken > 0)
    assert garbled.broken > 0, "no line broken in three runs of 3 workers × 1000 lines"
    assert garbled.missing > 0
    clean = print_demo(3, 1000, locked=True, start_method=start_method)
    assert (clean.whole, clean.broken, clean.missing) == (3000, 0, 0)
    assert clean.text.count("\n") == 3000
    # The kernel's thread that read the pipe is gone.
    assert not [t for t in threading.enumerate() if t.name == "ch03-print-drain"]


def test_print_into_sends_each_piece_of_a_line_at_once_and_restores_stdout(monkeypatch):
    """The worker's stream is unbuffered: each piece of a print() is in the pipe before the next
    piece is written (so another process's pieces can land between two), and sys.stdout is back
    to what it was afterwards."""
    import multiprocessing
    import sys

    import helpers.chapters.ch03_locks.printing as printing
    from helpers.timeline import Recorder

    reader, writer = multiprocessing.Pipe(duplex=False)
    seen = []

    def one_piece_at_a_time(lock, worker, lines):
        for piece in ("worker", str(worker), "says hello"):
            print(piece, end="")
            seen.append(os.read(reader.fileno(), 100) if reader.poll(1.0) else b"")

    monkeypatch.setattr(printing, "greet", one_piece_at_a_time)
    before = sys.stdout
    try:
        assert print_into(Recorder("w"), writer, None, 2, 1) == os.getpid()
        assert sys.stdout is before
        assert writer.closed
    finally:
        reader.close()
    assert seen == [b"worker", b"2", b"says hello"]


# -- lost updates -----------------------------------------------------------------------------
def test_unlocked_increments_are_lost_locked_ones_never(start_method):
    lossy = _until(lambda: count_demo(2, 100_000, "none", start_method=start_method),
                   lambda r: r.lost > 0)
    assert lossy.lost > 0, "no update lost in three runs of 2 × 100,000 unlocked increments"
    assert 0 < lossy.final < lossy.expected
    locked = count_demo(2, 100_000, "per increment", start_method=start_method)
    batched = count_demo(2, 100_000, "batched", start_method=start_method)
    assert locked.lost == 0 and locked.final == 200_000
    assert batched.lost == 0 and batched.final == 200_000
    # A lock round trip costs far more than the unlocked read-add-write (~10× measured here).
    assert locked.ns_per_increment > 2 * lossy.ns_per_increment
    assert batched.ns_per_increment < locked.ns_per_increment


def test_synchronized_value_without_get_lock_still_loses():
    results = _until(
        lambda: compare_strategies(2, 50_000, strategies=["synchronized"]),
        lambda rs: rs[0].lost > 0)
    assert results[0].lost > 0
    spans = results[0].trace.select(kind="run")
    assert len({e.lane for e in spans}) == 2


# -- the primitives, on the timeline ----------------------------------------------------------
def test_lock_holders_never_overlap_and_waiters_wait_for_a_holder():
    with Workers("forkserver") as w:
        lock = w.ctx.Lock()
        for _ in range(3):
            w.add(take_turns, lock, 3, 0.02, 0.005)
        w.run(30)
    assert not w.failures
    assert most_at_once(w.trace, "holding the lock") == 1
    assert len(w.trace.select(kind="run")) == 9
    found = waits(w.trace, "waiting for the lock", "holding the lock")
    assert found, "three workers sharing one lock never waited"
    assert all(holder != "?" and holder != waiter for waiter, _, holder in found)


def test_semaphore_lets_k_in_at_once():
    with Workers("forkserver") as w:
        sem = w.ctx.Semaphore(2)
        for _ in range(4):
            w.add(limited, sem, 2, 0.05)
        w.run(30)
    assert not w.failures
    assert most_at_once(w.trace, "inside") == 2


def test_rlock_can_be_taken_again_by_its_owner_a_lock_cannot(start_method):
    with Workers(start_method) as w:
        plain, recursive = w.ctx.Lock(), w.ctx.RLock()
        w.add(nested, plain, 0.005, 0.1)
        w.add(nested, recursive, 0.005, 0.1)
        w.run(30)
    assert w.results() == [False, True]
    inner = {e.lane: e.duration_ns for e in w.trace if e.label == "acquire again (inner)"}
    lanes = w.lanes()
    assert inner[lanes[0]] >= 0.09e9  # the plain lock waited its whole timeout
    assert inner[lanes[1]] < 0.09e9


def test_event_releases_every_waiter_after_it_is_set():
    with Workers("forkserver") as w:
        event = w.ctx.Event()
        w.add(prepare_then_signal, event, 0.1)
        for _ in range(2):
            w.add(wait_for_signal, event, 0.01)
        w.run(30)
    assert not w.failures
    set_ns = w.results()[0]
    starts = [e.start_ns for e in w.trace if e.label == "working"]
    assert len(starts) == 2 and min(starts) >= set_ns


def test_condition_consumers_take_items_only_after_they_are_made():
    with Workers("forkserver") as w:
        cond, items = w.ctx.Condition(), w.ctx.Value("i", 0, lock=False)
        w.add(produce, cond, items, 6, 0.02)
        for _ in range(2):
            w.add(consume, cond, items, 3, 0.005)
        w.run(30)
    assert not w.failures
    made = sorted(e.end_ns for e in w.trace if e.label == "making an item")
    taken = sorted(e.end_ns for e in w.trace if e.label == "waiting for an item")
    assert len(made) == len(taken) == 6
    assert all(t >= m for t, m in zip(taken, made)), "an item was taken before it was made"
    notified = sorted(e.start_ns for e in w.trace if e.label == "notify")
    assert len(notified) == 6
    assert all(t >= n for t, n in zip(taken, notified)), "a consumer woke before a notify"


def test_barrier_keeps_phases_apart():
    with Workers("forkserver") as w:
        barrier = w.ctx.Barrier(3)
        for i in range(3):
            w.add(in_phases, barrier, 3, 0.01 * (i + 1))
        w.run(30)
    assert not w.failures
    for phase in (2, 3):
        before = [e.end_ns for e in w.trace if e.label == f"phase {phase - 1}"]
        after = [e.start_ns for e in w.trace if e.label == f"phase {phase}"]
        assert min(after) >= max(before), f"phase {phase} began before phase {phase - 1} ended"


# -- deadlock and a killed holder -------------------------------------------------------------
def test_opposite_order_deadlocks_and_the_timeout_breaks_it(start_method):
    started = time.perf_counter()
    story = _until(lambda: deadlock_demo(True, hold_s=0.05, timeout=0.3,
                                         start_method=start_method),
                   lambda s: sum(s.values) >= 1)
    assert not story.failures
    assert sum(story.values) >= 1, "two workers taking A, B and B, A never deadlocked"
    assert time.perf_counter() - started < 30
    ordered = deadlock_demo(False, hold_s=0.05, timeout=0.3, start_method=start_method)
    assert ordered.values == [0, 0]
    waited = [e.duration_ns for e in ordered.trace if e.kind == "lock"]
    assert max(waited) < 0.3e9  # nobody ever waited its full timeout


def test_terminated_holder_leaves_the_lock_taken_for_good(start_method):
    story = killed_holder("terminate", waiters=2, timeout=0.3, start_method=start_method)
    assert story.values[1:] == [False, False]
    assert story.kernel_got_lock is False
    assert story.exitcodes[0] == -15  # SIGTERM
    assert 0 in story.failures
    stopped = killed_holder("stop", waiters=2, timeout=2.0, start_method=start_method)
    assert stopped.values[1:] == [True, True]
    assert stopped.kernel_got_lock is True
    assert stopped.exitcodes == [0, 0, 0]


def test_a_writer_terminated_mid_send_leaves_the_queue_broken(start_method):
    started = time.perf_counter()
    story = killed_writer(timeout=0.3, start_method=start_method)
    assert story.exitcodes[0] == -15
    assert story.values[1] == "put() returned"  # put() itself never waits
    # The reader found half a message: its get(timeout=0.3) never came back.
    assert "still inside q.get(timeout=0.3)" in story.failures[2].message
    stuck = [e for e in story.trace if e.lane == story.lanes[2]]
    assert stuck and stuck[0].duration_ns > 0.3e9
    assert time.perf_counter() - started < 15


# -- robustness -------------------------------------------------------------------------------
def test_a_failing_worker_reports_instead_of_hanging():
    with Workers("forkserver") as w:
        w.add(take_turns, None, 1, 0.01, 0.01)  # None has no acquire()
        run = w.run(30, keep_failures=True)
    assert w.failures == run.failures and list(run.failures) == [0]
    assert run.failures[0].type_name == "AttributeError"
    assert "acquire" in run.failures[0].traceback_text  # where it raised, as text


def test_run_raises_what_a_worker_reported():
    with pytest.raises(RuntimeError, match=r"worker 2: AttributeError"):
        with Workers("forkserver") as w:
            w.add(take_turns, w.ctx.Lock(), 1, 0.01, 0.01)
            w.add(take_turns, None, 1, 0.01, 0.01)
            w.run(30)
    assert all(code is not None for code in w.exitcodes)


def test_interrupt_stops_the_workers():
    with pytest.raises(KeyboardInterrupt):
        with Workers("forkserver") as w:
            lock, holding, stop = w.ctx.Lock(), w.ctx.Event(), w.ctx.Event()
            from helpers.chapters.ch03_locks import hold

            w.add(hold, lock, holding, stop, 30.0)
            w.launch()
            assert holding.wait(20)
            raise KeyboardInterrupt  # what the kernel's ■ button raises in the cell
    assert all(code is not None for code in w.exitcodes)


@pytest.mark.parametrize("call, name", [
    (lambda: count_demo(0), "processes"),
    (lambda: count_demo(2, 0), "increments"),
    (lambda: count_demo(2, 10, "sometimes"), "strategy"),
    (lambda: compare_strategies(2, 10, strategies="none"), "strategies"),
    (lambda: print_demo(1), "workers"),
    (lambda: print_demo(2, 0), "lines"),
    (lambda: deadlock_demo(timeout=0), "timeout"),
    (lambda: deadlock_demo(hold_s=float("nan")), "hold_s"),
    (lambda: killed_holder("kill -9"), "how"),
    (lambda: killed_holder(waiters=0), "waiters"),
    (lambda: Workers("vfork"), "start_method"),
    (lambda: Workers().run(), "number of workers"),
    (lambda: make_panel().run(processes=9), "processes"),
    (lambda: Workers().add(take_turns, None, 0, 0.01, 0.01), "rounds"),
    (lambda: Workers().add(limited, None, 2, float("nan")), "inside_s"),
    (lambda: Workers().add(nested, None, 0.01, 0), "inner_timeout"),
    (lambda: most_at_once([], ""), "label"),
    (lambda: waits([], "waiting", 3), "hold_label"),
    (lambda: plot_story(None, None), "trace"),
    (lambda: plot_story(__import__("helpers.timeline").timeline.Trace(), None,
                        handoffs=("waiting",)), "handoffs"),
])
def test_bad_parameters_are_named(call, name):
    with pytest.raises((ValueError, TypeError), match=name):
        call()


def test_a_worker_given_too_few_arguments_is_refused_before_anything_starts():
    w = Workers("forkserver")
    with pytest.raises(TypeError, match="missing"):
        w.add(take_turns, None, 3)
    assert w.processes == [] and w._tasks == []


def _story_trace():
    from helpers.timeline import Event, Trace

    ms = 1_000_000
    return Trace([Event("w1", "holding the lock", "run", 0, 30 * ms),
                  Event("w2", "waiting for the lock", "lock", 1 * ms, 30 * ms + 50_000),
                  Event("w2", "holding the lock", "run", 30 * ms + 50_000, 60 * ms),
                  Event("w1", "waiting for the lock", "lock", 31 * ms, 31 * ms + 100_000)])


def test_handoffs_pair_each_real_wait_with_the_release_that_ended_it():
    pairs = handoffs(_story_trace(), "waiting for the lock", "holding the lock")
    assert [(h.lane, w.lane) for h, w in pairs] == [("w1", "w2")]  # w1's 0.1 ms wait left out
    assert waits(_story_trace(), "waiting for the lock", "holding the lock") == [
        ("w2", pytest.approx(29.05), "w1")]


def test_plot_story_draws_each_handoff_from_the_release_to_the_waiter_at_layout_places():
    from matplotlib.figure import Figure

    ax = Figure(figsize=(11, 2)).subplots()
    layout = plot_story(_story_trace(), ax, ["w2", "w1"],
                        handoffs=("waiting for the lock", "holding the lock"))
    arrows = [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
    assert len(arrows) == 1
    (x0, y0), (x1, y1) = arrows[0].xyann, arrows[0].xy
    assert (y0, y1) == (layout.y("w1"), layout.y("w2")) == (1, 0)
    assert x0 == pytest.approx(layout.x(30_000_000)) and x1 == pytest.approx(30.05)
    # w1's 0.1 ms wait is too short to see as a bar: it gets a tick on its own row.
    from matplotlib.collections import PathCollection

    [ticks] = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [tuple(xy) for xy in ticks.get_offsets()] == [(pytest.approx(31.0), 1)]


def test_panel_counts_with_the_chosen_strategy():
    panel = make_panel()
    summary = panel.run(processes=2, increments=10_000, strategy="batched")
    assert "20,000 of    20,000 counted" in summary
    assert panel.result is summary and panel.runs == 1


def test_plot_story_names_the_spans_wide_enough_to_read():
    from matplotlib.figure import Figure

    from helpers.timeline import Event, Trace

    trace = Trace([Event("w", "holding the lock", "run", 0, 90_000_000),
                   Event("w", "waiting for the lock", "lock", 90_000_000, 91_000_000)])
    ax = Figure(figsize=(11, 2)).subplots()
    plot_story(trace, ax, ["w"])
    assert [t.get_text() for t in ax.texts] == ["holding the lock"]


def test_plot_count_draws_counted_and_lost():
    from matplotlib.figure import Figure

    result = count_demo(2, 10_000, "none", start_method="fork")
    axes = Figure(figsize=(11, 3)).subplots(1, 2)
    plot_count(result, axes)
    heights = [bar.get_height() for bar in axes[0].patches]
    assert heights == [result.final, result.lost]
    assert len(axes[1].collections) >= 1  # the two counting spans
    assert [t.get_text() for t in axes[1].get_yticklabels()][0].startswith("worker 1 ")


def test_a_run_that_lost_nothing_only_because_it_hardly_overlapped_says_so():
    from helpers.chapters.ch03_locks import CountResult

    def line(strategy, final, together_s):
        return str(CountResult(strategy, 2, 1000, final, 100.0, 0.01, together_seconds=together_s))

    assert "overlapped for only 10%" in line("none", 2000, 0.001)
    assert "overlapped" not in line("none", 1500, 0.001)  # it lost: the run proves the point
    assert "overlapped" not in line("none", 2000, 0.009)  # side by side, and still nothing lost
    assert "overlapped" not in line("per increment", 2000, 0.001)  # a lock: 0 lost is the point


def test_count_result_knows_when_the_processes_counted_together():
    from helpers.chapters.ch03_locks.counters import _together
    from helpers.timeline import Event

    apart = [Event("a", "n", "run", 0, 10), Event("b", "n", "run", 10, 20)]
    assert _together(apart) == (None, 0)
    overlapping = [Event("a", "n", "run", 0, 10), Event("b", "n", "run", 4, 20),
                   Event("c", "n", "run", 15, 30)]
    assert _together(overlapping) == ((4, 20), 6 + 5)
    result = count_demo(2, 50_000, "none", start_method="fork")
    if result.together_ns is not None:
        start, end = result.together_ns
        assert result.trace.events[0].start_ns <= end and start < end
        assert 0 < result.together_fraction <= 1


def test_a_worker_that_dies_before_the_start_releases_the_others(monkeypatch):
    import helpers.chapters.ch03_locks.workers as workers_module

    started = time.perf_counter()
    with Workers("fork") as w:
        w.add(take_turns, w.ctx.Lock(), 1, 0.01, 0.01)
        w.add(take_turns, w.ctx.Lock(), 2, 0.01, 0.01)
        real_worker = workers_module._worker
        # Under fork the child runs this patched target: worker 1 (one round) dies before the
        # barrier.
        monkeypatch.setattr(workers_module, "_worker", lambda barrier, fn, lock, rounds, *rest:
                            os._exit(3) if rounds == 1 else real_worker(barrier, fn, lock, rounds,
                                                                        *rest))
        run = w.run(30, keep_failures=True)
    assert run.failures[0] == Failure("ProcessDied", "exited with code 3 (sys.exit / os._exit)")
    assert run.failures[1].type_name == "BrokenBarrierError"
    assert time.perf_counter() - started < 10  # not the workers' 20 s barrier timeout


@pytest.mark.parametrize(("lane", "error"), [("", ValueError), ("   ", ValueError),
                                             ("x" * 61, ValueError), (3, TypeError),
                                             (None, TypeError), (["worker"], TypeError)])
def test_workers_refuse_a_lane_that_is_not_a_name(lane, error):
    with pytest.raises(error, match=r"^lane must be"):
        Workers(lane=lane)
    assert Workers(lane="counter").lanes() == []  # a name is fine; no worker has started
