"""Chapter 04 helpers, under every start method: pools, chunksize, Amdahl, failures, interrupts."""

from __future__ import annotations

import gc
import json
import math
import threading
import time
from pathlib import Path

import pytest
from _notebooks import solution
from _timing import busy, skip_if_busy, skip_unless_cores
from matplotlib.figure import Figure

from helpers.chapters.ch04_pools import (
    AmdahlRun,
    amdahl_speedup,
    compare_chunksizes,
    compare_process_per_task,
    compare_uneven,
    crash_in_worker,
    demo,
    die_on,
    exception_in_task,
    fail_on,
    fit_serial_fraction,
    interrupt_demo,
    live_children,
    maxtasksperchild_demo,
    measure_amdahl,
    plot_amdahl,
    task_items,
    time_job,
    uneven_items,
    values_and_trace,
    work_per_worker,
)
from helpers.course import kernel_safe_start_method, usable_cores
from helpers.exercises import check
from helpers.runners import (
    POOL_KINDS,
    default_chunksize,
    interrupt_after,
    run_pool,
    run_serial,
)
from helpers.timeline import Event, Trace, Traced
from helpers.workloads import cpu_task, iterations_for

pytestmark = pytest.mark.timeout(60)
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"




def test_every_pool_kind_returns_every_result_in_order(start_method):
    items = [iterations_for(0.002) + i for i in range(12)]
    for kind in POOL_KINDS:
        run = run_pool(cpu_task, items, kind=kind, workers=2, start_method=start_method)
        assert run.values == [cpu_task(n) for n in items], kind
        assert sorted(run.details["completion_order"]) == list(range(12)), kind
        per_worker = run.tasks_per_lane()
        assert sum(per_worker.values()) == 12 and 1 <= len(per_worker) <= 2, kind


def test_pool_speedup_and_overlapping_workers():
    skip_unless_cores(2)
    method = kernel_safe_start_method()
    items = task_items(8, 60.0)
    best, run = 0.0, None
    for _ in range(3):  # best of three: the machine is shared with other test runs
        serial = run_serial(cpu_task, [(n,) for n in items]).seconds
        run = run_pool(cpu_task, items, workers=2, start_method=method, chunksize=1)
        best = max(best, serial / run.seconds)
        # Both workers took tasks and were busy at the same time (in wall time), whatever the load.
        workers = [lane for lane in run.trace.lanes() if lane.startswith("worker")]
        assert len(workers) == 2 and run.trace.overlap_ns(*workers) > 0
        if best > 1.3:
            break
    skip_if_busy(best, "pool of 2 vs serial")
    assert best > 1.3, f"a pool of 2 was only {best:.2f}× faster than serial"


def test_chunksize_one_pays_for_dispatch():
    method = kernel_safe_start_method()
    ratios = []
    for _ in range(3):
        one, chunked = compare_chunksizes(600, 0.1, workers=2, start_method=method).runs
        assert chunked.details["chunksize"] == default_chunksize(600, 2) == 75
        ratios.append(one.seconds / chunked.seconds)
        if max(ratios) > 1.1:
            break
    skip_if_busy(max(ratios), "chunksize 1 vs default")
    assert max(ratios) > 1.1, f"chunksize 1 was not slower: {ratios}"


def test_process_per_task_costs_more_than_a_pool():
    result = compare_process_per_task(8, 2.0, workers=2, start_method="spawn")
    assert result.per_task_seconds > result.pool_seconds


def test_exception_reaches_the_kernel_with_the_worker_traceback(start_method):
    mapped, submitted = exception_in_task(8, 3, workers=2, start_method=start_method)
    assert mapped.raised == "ValueError" and "task 3" in mapped.message
    assert "fail_on" in mapped.worker_traceback
    assert submitted.raised == "ValueError" and submitted.results_kept == 7


def test_dead_worker_breaks_the_executor_and_times_out_the_pool(start_method):
    started = time.perf_counter()
    executor, pool = crash_in_worker(start_method=start_method, pool_wait_seconds=0.3)
    assert executor.raised == "BrokenProcessPool" and executor.seconds < 10
    assert pool.raised == "TimeoutError"
    assert time.perf_counter() - started < 20


def test_sigint_during_a_map_leaves_no_worker(start_method):
    dispatched = threading.Event()
    before = set(live_children())
    with pytest.raises(KeyboardInterrupt):
        with interrupt_after(0.3, counting_from=dispatched):
            run_pool(cpu_task, task_items(40, 1000.0), workers=2, start_method=start_method,
                     chunksize=1, on_dispatch=dispatched.set)
    deadline = time.monotonic() + 2.0
    while (left := set(live_children()) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"workers still running 2 s after the interrupt: {left}"


def test_interrupt_demo_reports_workers_gone():
    report = interrupt_demo(0.2, workers=2, start_method=kernel_safe_start_method())
    assert report.interrupted and len(report.workers_at_interrupt) == 2
    assert report.alive_afterwards == []


def test_interrupt_after_is_silent_when_the_block_ends_first():
    import signal

    handler = signal.getsignal(signal.SIGINT)
    about_to_fire = threading.Event()  # `before` runs in the timer just before it signals
    with interrupt_after(0.05, before=about_to_fire.set):
        pass
    # The timer was cancelled and joined as the block ended: no thread is left that could send
    # a late signal (so none is waited for), it never got as far as signalling, and the
    # kernel's own SIGINT handler is back.
    assert not [t for t in threading.enumerate() if t.name == "interrupt_after"]
    assert not about_to_fire.is_set()
    assert signal.getsignal(signal.SIGINT) is handler


def test_maxtasksperchild_replaces_workers(start_method):
    run = maxtasksperchild_demo(12, 3, workers=2, task_ms=2.0, start_method=start_method)
    per_worker = run.tasks_per_lane()
    assert max(per_worker.values()) <= 3 and len(per_worker) >= 4


def test_amdahl_fit_and_measure():
    speedups = [amdahl_speedup(0.25, n) for n in (1, 2, 4, 8)]
    assert fit_serial_fraction([1, 2, 4, 8], speedups) == pytest.approx(0.25)
    assert fit_serial_fraction([2, 4], [1.9, 3.5]) == pytest.approx(
        ((1 / 1.9 - 0.5) * 0.5 + (1 / 3.5 - 0.25) * 0.75) / (0.25 + 0.5625))
    assert amdahl_speedup(0.1, 10**6) == pytest.approx(10, rel=1e-4)  # close to the limit 1/f
    # The fit uses only the points with a core per worker: a fake run on 2 cores whose third
    # point is terrible still fits the fraction of the first two.
    fake = AmdahlRun([1, 2, 3], [1.0, 1 / amdahl_speedup(0.3, 2), 5.0], 1.0, 0.2, 2, "spawn")
    assert fake.fitted_fraction == pytest.approx(0.3)
    run = measure_amdahl(2, start_method=kernel_safe_start_method(), total_seconds=0.2)
    assert run.workers == [1, 2] and len(run.seconds) == 2
    assert 0.25 < run.speedups[0] < 2.0  # one worker plus the serial part: about the kernel alone
    ax = Figure().subplots()
    plot_amdahl(run, ax)
    measured = [line for line in ax.lines if line.get_label().startswith("measured")][0]
    assert list(measured.get_ydata()) == run.speedups
    curve = ("what free cores would show" if usable_cores() < 2 else  # one core: nothing fitted
             f"fitted f = {run.fitted_fraction:.1%}")
    assert any(curve in t.get_text() for t in ax.get_legend().get_texts())


def test_amdahl_on_one_core_fits_nothing_and_says_why():
    # Speed-ups of 1.06×, 1.04×, 0.93× on one core: a least-squares fit would say f ≈ 20 %.
    speedups = [1.06, 1.04, 0.93]
    one_core = AmdahlRun([1, 2, 3], [1 / s for s in speedups], 1.0, 0.2, 1, "spawn")
    assert one_core.fitted_fraction is None
    text = str(one_core)
    assert "one core" in text and "no serial fraction fitted" in text
    assert "fitted from the measurement" not in text and "20.0%" not in text
    assert "1.67× on 2" in text  # what two free cores would allow, from the built-in 20 %
    ax = Figure().subplots()
    plot_amdahl(one_core, ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("what free cores would show" in label for label in labels), labels
    assert not any("fitted" in label for label in labels) and "1 core here" in labels
    # Two cores but only one worker measured: no point to fit either, and no made-up fraction.
    assert AmdahlRun([1], [1.0], 1.0, 0.2, 2, "spawn").fitted_fraction is None


def test_core_seconds_count_turns_on_a_shared_core_once():
    from helpers.chapters.ch04_pools import core_seconds, workers_computing

    s = 1_000_000_000
    # a: 0-2 s, b: 1-3 s, c: 3-4 s (a span starting where another ends), d: no run at all.
    trace = Trace([Event("a", "t", "run", 0, 2 * s, 1), Event("b", "t", "run", 1 * s, 3 * s, 2),
                   Event("c", "t", "run", 3 * s, 4 * s, 3), Event("d", "t", "wait", 0, s, 4)])
    assert core_seconds(trace, 2) == {"a": 2.0, "b": 2.0, "c": 1.0, "d": 0.0}
    # On one core a and b take turns from 1 s to 2 s: half of that second each.
    assert core_seconds(trace, 1) == {"a": 1.5, "b": 1.5, "c": 1.0, "d": 0.0}
    assert work_per_worker(trace, 1) == [1.5, 1.5, 1.0, 0.0]
    assert workers_computing(trace, 4.0, 1) == pytest.approx(1.0)  # never above one core
    assert workers_computing(trace, 4.0, 2) == pytest.approx(1.25)
    # Three workers on two cores at once: two cores' worth, two thirds each.
    three = Trace([Event(lane, "t", "run", 0, 3 * s, 1) for lane in "xyz"])
    assert core_seconds(three, 2) == {"x": 2.0, "y": 2.0, "z": 2.0}
    with pytest.raises(ValueError, match="cores"):
        core_seconds(trace, 0)
    with pytest.raises(TypeError, match="trace"):
        work_per_worker([], 1)


def test_chunksize_printout_on_one_core_counts_one_worker_at_a_time():
    from helpers.chapters.ch04_pools import ChunksizeComparison
    from helpers.runners import Run

    s = 1_000_000_000
    both = Trace([Event("worker 1", "t", "run", 0, s, 1), Event("worker 2", "t", "run", 0, s, 2)])
    runs = [Run("processes", "Pool.map", [], [], 1.0, both, 2, "spawn",
                details={"chunksize": c, "kind": "Pool.map"}) for c in (1, 50)]
    one = str(ChunksizeComparison(runs, 6.0, 1))  # a load of 6: beside the point on one core
    assert "1.00 workers computing" in one and "2.00" not in one
    assert "one core" in one and "load average" not in one
    assert "2.00 workers computing" in str(ChunksizeComparison(runs, 0.0, 2))


def test_panel_demo_draws():
    fig = Figure()
    summary = demo(fig, lambda *a: None, workers=2, tasks=10, task_ms=1.0, chunksize=0,
                   kind="Pool.imap_unordered", start_method=kernel_safe_start_method(),
                   long_tasks=2)
    assert "10 tasks on 2 workers" in summary and "seconds of work per worker" in summary
    assert "2 of them 20× longer" in fig.axes[0].get_title()


def test_uneven_tasks_land_in_one_chunk_with_the_default_chunksize():
    items = uneven_items(48, 2.0, 6)
    assert items[:42] == task_items(42, 2.0) and len(set(items[42:])) == 1
    assert items[-1] >= 15 * items[0]  # LONG_FACTOR times longer, give or take rounding
    result = compare_uneven(48, 2.0, 6, workers=2, chunksize=1,
                            start_method=kernel_safe_start_method())
    default, shared = result.runs
    assert default.details["chunksize"] == 6 and shared.details["chunksize"] == 1
    # The default's last chunk holds all six long tasks: one worker did most of the work.
    heavy, light = result.busy_per_worker(default)
    assert heavy > 2 * light
    if not busy():
        top, bottom = result.busy_per_worker(shared)
        assert top < 1.6 * bottom


@pytest.mark.parametrize("call, name", [
    (lambda: run_pool(cpu_task, [1], workers=0, start_method="spawn"), "workers"),
    (lambda: run_pool(cpu_task, [1], kind="Pool.mapp", start_method="spawn"), "kind"),
    (lambda: run_pool(cpu_task, [1], chunksize=0, start_method="spawn"), "chunksize"),
    (lambda: run_pool(cpu_task, [1], start_method="vfork"), "start_method"),
    (lambda: run_pool(cpu_task, [], start_method="spawn"), "items"),
    (lambda: task_items(5, -1.0), "task_ms"),
    (lambda: amdahl_speedup(1.5, 2), "serial_fraction"),
    (lambda: interrupt_after(-1).__enter__(), "seconds"),
    (lambda: exception_in_task(10**9, start_method="spawn"), "tasks"),
    (lambda: exception_in_task(8, 3, workers=0, start_method="spawn"), "workers"),
    (lambda: exception_in_task(0, start_method="spawn"), "tasks"),
    (lambda: compare_process_per_task(8, workers=0, start_method="spawn"), "workers"),
    (lambda: compare_chunksizes(10, workers=0, start_method="spawn"), "workers"),
    (lambda: compare_chunksizes(10, chunksizes=(0,), start_method="spawn"), "chunksizes"),
    (lambda: crash_in_worker(start_method="spawn", workers=-1), "workers"),
    (lambda: maxtasksperchild_demo(workers=0, start_method="spawn"), "workers"),
    (lambda: interrupt_demo(workers=0, start_method="spawn"), "workers"),
    (lambda: fit_serial_fraction([2], [0.0]), "speedups"),
    (lambda: fit_serial_fraction([2, 3], [1.5]), "same length"),
    (lambda: amdahl_speedup(0.1, float("nan")), "workers"),
    (lambda: amdahl_speedup(0.1, math.inf), "workers"),
    (lambda: fail_on(-1, 3), "index"),
    (lambda: die_on(0, 2.5), "bad_index"),
    (lambda: measure_amdahl(2, start_method="vfork"), "start_method"),
    (lambda: uneven_items(5, 1.0, 6), "long_tasks"),
    (lambda: compare_uneven(48, 2.0, 6, chunksize=0, start_method="spawn"), "chunksize"),
])
def test_bad_parameters_name_themselves(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_exercise_solutions_pass(monkeypatch, tmp_path):
    import helpers.exercises

    monkeypatch.setattr(helpers.exercises, "QUICK", False)  # as a reader sees it
    for exercise, notebook, marker in (("04.1", "04a_pools.ipynb", "math.ceil(2000"),
                                       ("04.2", "04a_pools.ipynb", "f = 0.1"),
                                       ("04.3", "04a_pools.ipynb", "def run_all"),
                                       ("04.4", "04b_pool_failures.ipynb", "a for loop")):
        assert not check(exercise, ...).answered
        feedback = check(exercise, solution(notebook, marker, tmp_path))
        if exercise == "04.3" and feedback.inconclusive:
            pytest.skip(f"the machine is too busy to share the work out right now: {feedback!r}")
        assert feedback, repr(feedback)
    assert not check("04.1", 1) and not check("04.2", {8: 8, "limit": 100})
    hints = repr(check("04.1", 300)) + repr(check("04.2", {8: 8, "limit": 100}))
    assert "250" not in hints and "4.7" not in hints  # feedback never gives the answer away
    wrong = {"Pool.imap, a for loop": 0, "Pool.imap, a try around each next()": 3,
             "Executor.map, a for loop": 7}
    feedback = check("04.4", wrong)
    assert not feedback and sum(p.ok for p in feedback.points) == 0


def _template(tmp_path: Path) -> Path:
    cells = json.loads((NOTEBOOKS / "04a_pools.ipynb").read_text(encoding="utf-8"))["cells"]
    skeleton = tmp_path / "balanced.py"
    skeleton.write_text(next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and
                             "".join(c["source"]).startswith("%%writefile {WORK}/balanced.py")
                             ).split("\n", 1)[1], encoding="utf-8")
    return skeleton


def _module(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(f"def run_all(pool, task, items):\n    {body}\n", encoding="utf-8")
    return str(path)


def test_exercise_04_3_fails_the_template_on_both_counts_whatever_the_load(monkeypatch,
                                                                            tmp_path):
    import helpers.exercises

    monkeypatch.setattr(helpers.exercises, "QUICK", False)
    feedback = check("04.3", str(_template(tmp_path)))
    wrong = [p.message for p in feedback.points if p.ok is False]
    # The default chunksize puts every long task in one chunk, one worker's: never shared out,
    # busy machine or not; and pool.map waits without a timeout.
    assert len(wrong) == 2, repr(feedback)
    assert "of the work" in wrong[0] and not feedback.inconclusive
    assert "pool.map(...) waits without a timeout" in wrong[1]


def test_exercise_04_3_judges_balance_and_timeouts_apart(monkeypatch, tmp_path):
    import helpers.exercises

    monkeypatch.setattr(helpers.exercises, "QUICK", False)
    shared_untimed = check("04.3", _module(tmp_path, "untimed", "return pool.map(task, items, "
                                                                "chunksize=1)"))
    untimed = [p.message for p in shared_untimed.points if not p.ok]
    assert any("waits without a timeout" in m for m in untimed), repr(shared_untimed)
    iterated = check("04.3", _module(tmp_path, "iterated", "return list(pool.imap(task, items))"))
    assert any("iterating over pool.imap" in p.message and not p.ok for p in iterated.points)
    default_timed = check("04.3", _module(tmp_path, "timed", "return pool.map_async(task, "
                                                             "items).get(60)"))
    assert [p.ok for p in default_timed.points] == [True, True, False, True], repr(default_timed)
    in_kernel = check("04.3", _module(tmp_path, "kernel", "return [task(n) for n in items]"))
    assert any("ran in the kernel" in p.message for p in in_kernel.points), repr(in_kernel)
    reversed_ = check("04.3", _module(tmp_path, "reversed", "return pool.map_async(task, items, "
                                                            "chunksize=1).get(60)[::-1]"))
    assert any("in the order of items" in p.message for p in reversed_.points)


def test_exercise_04_4_answers_are_what_the_loops_do(start_method):
    """Run the three loops of 04.4 for real: the check's answers are what happens."""
    from concurrent.futures import ProcessPoolExecutor

    from helpers.course import mp_context

    ctx = mp_context(start_method)
    counted = {}
    with ctx.Pool(2) as pool:
        got = []
        with pytest.raises(ValueError):
            for r in pool.imap(fail_on, range(8)):
                got.append(r)
        counted["Pool.imap, a for loop"] = len(got)
        got, results = [], pool.imap(fail_on, range(8))
        for _ in range(8):
            try:
                got.append(results.next(timeout=60))
            except ValueError:
                pass
        counted["Pool.imap, a try around each next()"] = len(got)
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        got = []
        with pytest.raises(ValueError):
            for r in executor.map(fail_on, range(8), timeout=60):
                got.append(r)
        counted["Executor.map, a for loop"] = len(got)
    del results  # it holds the pool: collect it now, with its semaphores, not after the test
    gc.collect()
    assert counted == {"Pool.imap, a for loop": 3, "Pool.imap, a try around each next()": 7,
                       "Executor.map, a for loop": 3}
    assert check("04.4", counted)


def test_time_job_splits_the_rest_into_one_part_per_worker():
    class Recording:  # stands in for a pool: notes what it is handed, computes in the kernel
        def __init__(self):
            self.calls = []

        def map_async(self, fn, parts, chunksize=None):
            self.calls.append((fn, list(parts), chunksize))
            values = [fn(n) for n in parts]
            return type("Done", (), {"get": lambda self, timeout=None: values})()

    pool = Recording()
    seconds = time_job(pool, 1003, 0.2, 3)
    ((fn, parts, chunksize),) = pool.calls
    assert fn is cpu_task and chunksize == 1 and seconds > 0
    assert len(parts) == 3 and sum(parts) == 1003 - round(1003 * 0.2)
    assert max(parts) - min(parts) <= 1
    with pytest.raises(TypeError, match="pool"):
        time_job(object(), 10, 0.2, 2)


def test_values_and_trace_unpacks_what_each_worker_ran(start_method):
    from helpers.course import mp_context

    sizes = task_items(6, 2.0)
    with mp_context(start_method).Pool(2) as pool:
        results = pool.map_async(Traced(cpu_task), sizes, chunksize=1).get(60)
    values, trace = values_and_trace(results)
    assert values == [cpu_task(n) for n in sizes]
    assert len(trace.select(kind="run")) == 6
    assert {e.pid for e in trace.events} <= {r.recording.events[0].pid for r in results}
    with pytest.raises(TypeError, match="TracedResult"):
        values_and_trace([1, 2])


def test_work_per_worker_sums_each_lane_largest_first():
    trace = Trace([Event("a", "t", "run", 0, 1_000_000_000, 1),
                   Event("b", "t", "run", 0, 3_000_000_000, 2),
                   Event("a", "t", "run", 2_000_000_000, 2_500_000_000, 1)])
    assert work_per_worker(trace, 2) == [3.0, 1.5]


def test_busy_machine_note_speaks_only_when_the_cores_are_taken(monkeypatch):
    import os

    from helpers.chapters.ch04_pools import busy_machine_note, views

    monkeypatch.setattr(views, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 0.0, 0.0))
    assert "load average" in busy_machine_note()
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert busy_machine_note() == ""


def test_busy_machine_note_says_plainly_that_one_core_is_all_there_is(monkeypatch):
    import os

    from helpers.chapters.ch04_pools import busy_machine_note, views

    monkeypatch.setattr(views, "usable_cores", lambda: 1)
    for load in (0.0, 3.0):  # idle or busy: one core is the reason, and it does not pass
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        note = busy_machine_note("two workers would take half the time")
        assert "one core" in note and "two workers would take half the time" in note
        assert "load average" not in note and "again" not in note
    assert "one core" in busy_machine_note()  # a sentence of its own without `with_more`
    with pytest.raises(ValueError, match="with_more"):
        busy_machine_note("")


def test_chunksize_printout_says_when_a_busy_machine_flipped_the_order():
    from helpers.chapters.ch04_pools import ChunksizeComparison
    from helpers.runners import Run
    from helpers.timeline import Trace

    def run(chunksize, seconds):
        return Run("processes", "Pool.map", [], [], seconds, Trace(), 2, "spawn",
                   details={"chunksize": chunksize, "kind": "Pool.map"})

    flipped = [run(1, 1.0), run(50, 1.5)]
    assert "not the slowest" in str(ChunksizeComparison(flipped, 6.0, 2))
    assert "not the slowest" not in str(ChunksizeComparison(flipped, 1.0, 2))  # idle: as measured
    assert "not the slowest" not in str(ChunksizeComparison([run(1, 2.0), run(50, 1.0)], 6.0, 2))
