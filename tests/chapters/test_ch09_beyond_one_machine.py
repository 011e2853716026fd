"""Chapter 09: a command-line cluster that leaves nothing behind, a killed worker, data locality,
the scheduler's cost per task against Pool.map, the panel, and exercise 09.1."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest

import helpers.exercises
from helpers.chapters.ch09_beyond_one_machine import (
    OverheadRow,
    cli_cluster,
    compare_locality,
    kill_a_worker,
    make_panel,
    measure_overhead,
    plot_kill,
    scheduler_command,
    worker_command,
)
from helpers.exercises import check
from helpers.runners import interrupt_after, process_pool
from helpers.runners.dask import dask_client

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "09_beyond_one_machine.ipynb"


def _gone(pids) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def test_a_killed_worker_s_tasks_are_recomputed_and_nothing_is_left(tmp_path, monkeypatch):
    from _leftovers import segments, unowned_new_segments

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this process's temporary folder
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # and the scheduler's and workers'
    shm_before = segments()
    with cli_cluster(2) as cluster:
        assert cluster.address.startswith("tcp://127.0.0.1:")
        assert cluster.worker_names() == ["worker-a", "worker-b"]
        pids = [pid for group in cluster.pids().values() for pid in group]
        assert len(pids) >= 5  # a scheduler, and a nanny plus its worker per worker
        report = kill_a_worker(cluster, tasks=12, task_ms=40.0, after=3)
        survivor = ({"worker-a", "worker-b"} - {report.killed}).pop()
        assert report.correct and len(report.runs_per_task) == 12
        assert cluster.worker_names() == [survivor]
        # The killed worker held the latest result: it, at least, was computed again elsewhere.
        assert report.recomputed >= 1
        last = max(e.end_ns for e in report.trace.events if e.lane.startswith(report.killed))
        assert last <= report.kill_ns
    assert _gone(pids)
    assert list(tmp_path.iterdir()) == []  # no dask-scratch-space, no logs
    deadline = time.monotonic() + 5  # a resource tracker unlinks what its killed owner left
    while unowned_new_segments(shm_before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert unowned_new_segments(shm_before) == []


def test_an_interrupt_mid_task_stops_every_process():
    with pytest.raises(KeyboardInterrupt):
        with cli_cluster(1) as cluster:
            pids = [pid for group in cluster.pids().values() for pid in group]
            with interrupt_after(0.5):  # as the kernel's ■ button would, while a task runs
                cluster.client.submit(time.sleep, 30.0, pure=False).result(timeout=60)
    assert _gone(pids)


def test_the_commands_bind_127_0_0_1_and_end_by_themselves():
    scheduler = scheduler_command("/tmp/s.json")
    worker = worker_command("tcp://127.0.0.1:1", "worker-a")
    assert scheduler[scheduler.index("--host") + 1] == "127.0.0.1"
    assert "--idle-timeout" in scheduler and "--death-timeout" in worker
    assert worker[worker.index("--host") + 1] == "127.0.0.1"


@pytest.fixture(scope="module")
def client():
    with dask_client(2) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def test_scatter_beats_shipping_a_large_array_with_every_task(client):
    report = compare_locality(client, megabytes=16.0, tasks=8)
    assert report.correct
    assert report.scatter_seconds < report.ship_seconds


def test_dask_costs_more_per_tiny_task_than_pool_map(client):
    with process_pool(2) as pool:
        rows = measure_overhead(client, pool, workers=2, sizes_ms=(0.01, 20.0), row_seconds=0.1)
    tiny, large = rows
    assert tiny.per_task_ms("Dask futures") > tiny.per_task_ms("Pool.map")
    assert large.compute_ms > 5 and large.tasks >= 8
    for row in rows:
        for how, wall in row.seconds.items():
            # The tasks' own time, as the workers measured it: some, and within their wall time.
            assert 0 < row.compute_seconds[how] <= wall * row.workers
            # What is left is a cost, never clamped to nothing (it once printed 0 for Pool.map).
            assert row.per_task_ms(how) > 0, (how, row)
    assert large.per_task_ms("Pool.map") != tiny.per_task_ms("Pool.map")


def test_the_cost_per_task_is_the_wall_time_less_the_tasks_own_time_in_that_run():
    # 10 tasks of 20 ms nominal that computed 15 ms each in the workers: 2 workers × 0.1 s of
    # wall time, less 0.15 s computing, is 5 ms per task. Against the nominal 20 ms the same run
    # would cost -10 ms per task: that is what used to be clamped to 0.
    row = OverheadRow(20.0, 10, 15.0, {"Pool.map": 0.1}, workers=2,
                      compute_seconds={"Pool.map": 0.15})
    assert row.per_task_ms("Pool.map") == pytest.approx(5.0)
    # More computing than the workers had wall time means a wrong `workers`: shown, not hidden.
    row = OverheadRow(20.0, 10, 20.0, {"Pool.map": 0.05}, workers=2,
                      compute_seconds={"Pool.map": 0.2})
    assert row.per_task_ms("Pool.map") == pytest.approx(-10.0)


def test_timed_cpu_task_times_the_work_it_does():
    from helpers.chapters.ch09_beyond_one_machine.tasks import timed_cpu_task
    from helpers.workloads import iterations_for

    started, cpu_started = time.perf_counter(), time.thread_time()
    own = timed_cpu_task(iterations_for(0.02))
    cpu, wall = time.thread_time() - cpu_started, time.perf_counter() - started
    # At least the CPU time the call took (a clock cannot run slower than the work it timed),
    # at most the wall time around it.
    assert cpu * 0.95 <= own <= wall
    with pytest.raises(ValueError, match="iterations"):
        timed_cpu_task(-1)


def test_the_panel_runs_on_its_own_cluster():
    text = make_panel().run(workers=1, threads=2, tasks=4, task_ms=10.0)
    assert "starting the cluster" in text
    # Two threads of one worker share its GIL: the best case counts one task at a time.
    assert "1 at a time" in text and "0.04 s" in text, text
    with pytest.raises(ValueError, match="task_ms"):
        make_panel().run(tasks=64, task_ms=500.0)


def _solution(notebook: Path, exercise: str) -> str:
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown" and "<details>" in cell.source and exercise in cell.source:
            return re.search(r"```python\n(.*?)```", cell.source, re.S).group(1)
    raise AssertionError(f"no solution for {exercise} in {notebook.name}")


def test_exercise_solution_passes_and_wrong_ports_are_told_why(monkeypatch):
    monkeypatch.setattr(helpers.exercises, "QUICK", False)
    namespace = {"check": lambda exercise_id, answer: None}
    exec(_solution(NOTEBOOK, "09.1"), namespace)
    assert check("09.1", namespace["answer"]).passed
    assert not check("09.1", ...).answered

    def gather_all(client, fn, items):  # pool.map's way: the first error loses every result
        return client.gather(client.map(fn, items)), {}

    feedback = check("09.1", gather_all)
    assert not feedback.passed and "raised ValueError" in feedback.points[0].message

    def finishing_order(client, fn, items):
        from distributed import as_completed

        results, errors = [], {}
        for future in as_completed(client.map(fn, items), timeout=60):
            if future.status == "error":
                errors[len(results)] = future.exception(timeout=60)
                results.append(None)
            else:
                results.append(future.result(timeout=60))
        return results, errors

    feedback = check("09.1", finishing_order)
    assert not feedback.passed and any("wrong order" in p.message for p in feedback.points)

    def one_at_a_time(client, fn, items):
        results, errors = [], {}
        for i, x in enumerate(items):
            try:
                results.append(client.submit(fn, x).result(timeout=60))
            except ValueError as error:
                results.append(None)
                errors[i] = error
        return results, errors

    feedback = check("09.1", one_at_a_time)
    assert not feedback.passed  # never "at the same time": ✗, or inconclusive on a loaded machine
    timing = [p for p in feedback.points if "one after the other" in p.message
              or "at the same time" in p.message or "overlapped" in p.message]
    assert len(timing) == 1 and timing[0].ok is not True, feedback.points
    assert any(p.ok and "errors" in p.message for p in feedback.points)  # the errors are right

    feedback = check("09.1", lambda client, fn, items: client.map(fn, items))
    assert not feedback.passed and "pair" in feedback.points[0].message


def test_the_09_1_overlap_is_a_sliver_for_tasks_in_turn_and_most_for_parallel_ones():
    from helpers.exercises.ch09 import _largest_overlap
    from helpers.timeline import Event, Trace

    ms = 1_000_000
    in_turn = Trace()  # each task ends 2 ms after the next one started, on the other worker
    for i in range(6):
        in_turn.add(Event(f"worker {i % 2 + 1}", f"task {i}", "run", i * 50 * ms,
                          (i + 1) * 50 * ms + 2 * ms, 1 + i % 2))
    assert _largest_overlap(in_turn) < 0.1
    parallel = Trace()
    for i in range(6):
        parallel.add(Event(f"worker {i % 2 + 1}", f"task {i}", "run", (i // 2) * 50 * ms,
                           (i // 2 + 1) * 50 * ms, 1 + i % 2))
    assert _largest_overlap(parallel) == 1.0
    lone = Trace()
    lone.add(Event("worker 1", "task 0", "run", 0, 50 * ms, 1))
    assert _largest_overlap(lone) == 0.0


def test_scatter_puts_data_on_one_worker_unless_broadcast(client):
    import numpy as np

    client.wait_for_workers(2, timeout=60)
    [one] = client.scatter([np.arange(1000)])
    assert len(client.who_has([one])[one.key]) == 1
    [each] = client.scatter([np.arange(1001)], broadcast=True)
    assert len(client.who_has([each])[each.key]) == 2


def test_plot_kill_draws_the_kill_and_hatches_only_the_recomputed_tasks():
    from collections import Counter

    from matplotlib.figure import Figure

    from helpers.chapters.ch09_beyond_one_machine import KillReport
    from helpers.timeline import Event, Trace

    ms = 1_000_000
    trace = Trace()
    trace.add(Event("worker-a thread 1", "task 0", "run", 0, 100 * ms, 1))
    trace.add(Event("worker-b thread 1", "task 1", "run", 0, 100 * ms, 2))
    trace.add(Event("worker-b thread 1", "task 0", "run", 150 * ms, 250 * ms, 2))  # again
    trace.add(Event("worker-b thread 1", "task 2", "run", 250 * ms, 350 * ms, 2))
    report = KillReport("worker-a", 2, True, 0.35, 120 * ms, trace,
                        Counter({"task 0": 2, "task 1": 1, "task 2": 1}), ["worker-a thread 1"])
    ax = Figure().subplots()
    artists = plot_kill(report, ax)
    hatched = [c for c in ax.collections if c.get_hatch() == "//"]
    # Task 0 on worker-b only, not its first run on the killed worker: one lane, one bar.
    assert len(hatched) == 1 and len(hatched[0].get_paths()) == 1
    lines = [a for a in artists if getattr(a, "get_xdata", None) and len(a.get_xdata()) == 2]
    assert lines and lines[-1].get_xdata()[0] == pytest.approx(120.0, abs=1.0)  # ms on the axis
    assert any("SIGKILL worker-a" in t.get_text() for t in ax.texts)
    assert "1 task recomputed" in ax.get_title()


@pytest.mark.parametrize(("call", "name"), [
    (lambda: worker_command("127.0.0.1:1", "worker-a"), "address"),
    (lambda: worker_command("tcp://10.0.0.5:8786", "worker-a"), "address"),
    (lambda: worker_command("tcp://127.0.0.1:x", "worker-a"), "address"),
    (lambda: worker_command("tcp://127.0.0.1:1", "a b; rm"), "name"),
    (lambda: worker_command("tcp://127.0.0.1:1", 3), "name"),
    (lambda: scheduler_command(""), "scheduler_file"),
    (lambda: scheduler_command("/no/such/folder/s.json"), "scheduler_file"),
])
def test_the_commands_refuse_what_they_cannot_use(call, name):
    with pytest.raises(ValueError, match=name):
        call()
