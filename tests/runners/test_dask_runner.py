"""helpers.runners.dask: tasks on a LocalCluster of worker processes, the task stream as a Trace.

One LocalCluster serves the module (a start costs 1-3 s); the autouse `no_leftovers` fixture then
checks after each test that nothing new was left running, and `test_a_run_leaves_nothing` checks
that a cluster of its own goes entirely.
"""

from __future__ import annotations

import tempfile
import time
import urllib.request

import psutil
import pytest
from _timing import skip_unless_cores
from distributed import LocalCluster

from helpers.runners import Failure, compare, interrupt_after
from helpers.runners.dask import (
    dask_client,
    quiet_dask,
    run_dask,
    start_cluster,
    task_stream_trace,
)
from helpers.workloads import cpu_task, iterations_for


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x


@pytest.fixture(scope="module")
def client():
    with dask_client(2) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def test_values_in_task_order_and_one_lane_per_worker_thread(client):
    n = iterations_for(0.03)
    before = time.perf_counter_ns()
    run = run_dask(cpu_task, [(n,)] * 6, client=client)
    after = time.perf_counter_ns()
    assert run.values == [cpu_task(n)] * 6 and run.ok
    assert sorted(run.trace.lanes()) == ["worker 1 thread 1", "worker 2 thread 1"]
    spans = run.trace.select(kind="run")
    assert sorted(e.label for e in spans) == sorted(f"task {i}" for i in range(6))
    # Dask's epoch times, mapped through each worker's clock pair, land inside the call:
    # the merge onto perf_counter_ns is right to well within a millisecond on one machine.
    slack = 5_000_000
    assert all(before - slack <= e.start_ns <= e.end_ns <= after + slack for e in spans)
    assert len(run.details["pids"]) == 2 and run.details["dashboard"].startswith("http://127.0.0.1")
    with urllib.request.urlopen(run.details["dashboard"], timeout=30) as page:  # bokeh serves it
        assert page.status == 200 and b"Dask" in page.read()


def test_both_workers_compute_at_the_same_time(client):
    skip_unless_cores(2)  # on one core, time-sliced spans overlap too: they would show nothing
    # Dask's scheduler decides where each task goes, and once in CI it kept a second worker idle
    # until the first had finished: the claim is that two workers *can* compute at once, so the
    # best of three runs must show it. A runner that used one worker would fail all three.
    spans = []
    for _ in range(3):
        run = run_dask(cpu_task, [(iterations_for(0.1),)] * 6, client=client)
        lanes = run.trace.lanes()
        if len(lanes) == 2 and run.trace.overlap_ns(*lanes) > 0:
            return
        runs = run.trace.select(kind="run")
        origin = min((e.start_ns for e in runs), default=0)
        spans.append([(e.lane, round((e.start_ns - origin) / 1e6), round((e.end_ns - origin) / 1e6))
                      for e in runs])  # lane, start and end in ms
    pytest.fail(f"the two worker processes never computed at once in 3 runs: {spans}")


def test_a_failing_task_is_a_failure_not_an_exception(client):
    run = run_dask(fails_on_three, [(i,) for i in range(5)], client=client)
    assert run.values == [0, 1, 2, None, 4]
    assert isinstance(run.failures[3], Failure) and run.failures[3].type_name == "ValueError"
    assert "three is not allowed" in run.failures[3].message


def test_a_run_past_its_timeout_raises_and_cancels(client):
    with pytest.raises(TimeoutError):
        run_dask(time.sleep, [(2.0,)], client=client, timeout=0.3)


def test_a_run_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a private temporary folder
    run = run_dask(cpu_task, [(1000,)] * 2, workers=1)
    assert run.values == [cpu_task(1000)] * 2
    assert run.details["cluster_start_seconds"] > 0
    for pid in run.details["pids"]:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert list(tmp_path.iterdir()) == []  # no dask-scratch-space, no scratch of ours


def test_a_client_for_an_address_where_nothing_listens_makes_nothing():
    import socket
    import threading

    with socket.socket() as probe:  # a free port, closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    threads = {t.name for t in threading.enumerate()}
    started = time.monotonic()
    with pytest.raises(OSError, match="no Dask scheduler"):
        with dask_client(address=f"tcp://127.0.0.1:{port}"):
            pass
    assert time.monotonic() - started < 5
    assert {t.name for t in threading.enumerate()} <= threads


def test_an_interrupt_cancels_the_tasks_and_keeps_the_cluster_usable(client):
    with pytest.raises(KeyboardInterrupt):
        with interrupt_after(0.3):
            run_dask(time.sleep, [(1.0,)] * 20, client=client)
    # The two running tasks finish their second; the 18 others were cancelled, never run.
    started = time.perf_counter()
    assert run_dask(cpu_task, [(100,)], client=client).ok
    assert time.perf_counter() - started < 5.0


def test_an_interrupt_stops_a_run_s_own_cluster():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(KeyboardInterrupt):
        with interrupt_after(3.0):  # in the cluster's start or in the tasks: either way
            run_dask(time.sleep, [(30.0,)] * 2, workers=1)
    started = {p.pid for p in psutil.Process().children(recursive=True)} - before
    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in started if
                                  psutil.pid_exists(pid)], timeout=5)
    assert not [p for p in alive if "resource_tracker" not in " ".join(p.cmdline())]


def test_compare_knows_dask(client):
    comparison = compare(["serial", "dask"], cpu_task, [(1000,)] * 2, workers=1)
    assert comparison.runs["dask"].values == comparison.runs["serial"].values


def test_task_stream_records_become_events_on_the_worker_clock():
    records = [
        {"worker": "tcp://127.0.0.1:2", "thread": 7, "key": "b", "status": "OK",
         "startstops": ({"action": "transfer", "start": 100.0, "stop": 100.5},
                        {"action": "compute", "start": 101.0, "stop": 102.0})},
        {"worker": "tcp://127.0.0.1:1", "thread": 9, "key": "a", "status": "OK",
         "startstops": ({"action": "compute", "start": 100.0, "stop": 101.0},)},
    ]
    # Worker 1's perf counter reads 5 s at epoch 100 s; worker 2's reads 50 s at epoch 100 s.
    clocks = {"tcp://127.0.0.1:1": (11, 5_000_000_000, 100_000_000_000),
              "tcp://127.0.0.1:2": (22, 50_000_000_000, 100_000_000_000)}
    trace = task_stream_trace(records, clocks, labels={"a": "task 0"})
    by = {(e.lane, e.kind): e for e in trace.events}
    first = by[("worker 1 thread 1", "run")]
    assert (first.label, first.start_ns, first.end_ns, first.pid) == \
        ("task 0", 5_000_000_000, 6_000_000_000, 11)
    assert by[("worker 2 thread 1", "send")].start_ns == 50_000_000_000
    assert by[("worker 2 thread 1", "run")].end_ns == 52_000_000_000
    assert trace.clocks[22] == (50_000_000_000, 100_000_000_000)


def test_bad_values_are_refused_before_any_cluster_starts():
    with pytest.raises(ValueError, match="workers"):
        run_dask(cpu_task, [(1,)], workers=0)
    with pytest.raises(ValueError, match="records"):
        task_stream_trace([], {})
    with pytest.raises(ValueError, match="level"):
        with quiet_dask(-5):
            pass
    with pytest.raises(ValueError, match="n_workers"):
        with start_cluster(LocalCluster, 0):
            pass
    with pytest.raises(ValueError, match="asynchronous"):
        with start_cluster(LocalCluster, 1, asynchronous=True):
            pass
    with pytest.raises(TypeError, match="cluster_class"):
        with start_cluster("LocalCluster", 1):
            pass
    with pytest.raises(ValueError, match="address"):
        with dask_client(address="127.0.0.1:8786"):
            pass


def _own_children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())}


@pytest.mark.parametrize("seconds", [0.2, 1.0, 2.0])
def test_an_interrupt_while_start_cluster_starts_leaves_no_worker(seconds):
    # A bare LocalCluster(n_workers=2) interrupted in its constructor leaves its two worker
    # processes running (they go on starting in Dask's loop thread); start_cluster must not,
    # wherever the interrupt lands: in the constructor, while the workers start, or in the block.
    before = _own_children()
    with pytest.raises(KeyboardInterrupt):
        with interrupt_after(seconds):
            with start_cluster(LocalCluster, 2, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0") as cluster:
                assert len(cluster.scheduler_info["workers"]) == 2
                time.sleep(30)
    time.sleep(1.0)  # a worker that a nanny was still starting would show up by now
    left = [psutil.Process(pid) for pid in _own_children() - before if psutil.pid_exists(pid)]
    _, alive = psutil.wait_procs(left, timeout=3)
    assert not alive, [p.cmdline() for p in alive]


# A task that says when it started (a file per task, named after its worker's pid), then sleeps:
# the test knows the workers are computing without sleeping itself.
_MARKED_TASK = '''
import os
import time


def marked_sleep(folder, seconds):
    open(os.path.join(folder, f"running-{os.getpid()}-{time.monotonic()}"), "w").close()
    time.sleep(seconds)
    return seconds
'''
# The reader's cell, as a script: 2 workers, 8 tasks of 3 s (the fuzz finding's run).
_INTERRUPTED_CELL = '''
import sys
import threading
import time

from helpers.runners.dask import run_dask
from marked import marked_sleep

if __name__ == "__main__":  # the workers are spawned: they import this file too
    try:
        run_dask(marked_sleep, [(sys.argv[1], float(sys.argv[2]))] * 8, workers=2)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted {time.monotonic()}", flush=True)
    print("threads", *sorted(t.name for t in threading.enumerate()), flush=True)
'''
_TASK_SECONDS = 3.0


def test_a_kernel_interrupt_to_the_process_group_stops_the_workers_at_once(tmp_path):
    """Jupyter interrupts a kernel with SIGINT to its whole process group, Dask's workers included.

    Before, each worker died of it with a nanny's traceback in the cell, and the kernel answered
    only when the running tasks had ended (3.3 s, both workers still running 2 s after the
    interrupt). Now the cell answers, and every worker is gone, before the running tasks could
    have ended; nothing is printed but the cell's own lines.
    """
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from helpers.runners.cleanup import kill_process_group

    (tmp_path / "marked.py").write_text(_MARKED_TASK)
    (tmp_path / "cell.py").write_text(_INTERRUPTED_CELL)
    markers = tmp_path / "markers"
    markers.mkdir()
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
           "TMPDIR": str(tmp_path)}
    stderr = tmp_path / "stderr.txt"  # a file: the pipe carries the cell's answer alone
    with open(stderr, "w") as errors:
        cell = subprocess.Popen([sys.executable, "cell.py", str(markers), str(_TASK_SECONDS)],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=errors,
                                text=True, start_new_session=True)  # its own group, as a kernel
    try:
        deadline = time.monotonic() + 120  # the cluster's start on a loaded machine
        while len(list(markers.iterdir())) < 2:  # both workers computing
            assert cell.poll() is None and time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.02)
        # Those tasks end _TASK_SECONDS after they started (their markers' clock is this one's).
        tasks_end = min(float(m.name.split("-")[2]) for m in markers.iterdir()) + _TASK_SECONDS
        workers = [p for p in psutil.Process(cell.pid).children(recursive=True)
                   if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) >= 2
        os.killpg(cell.pid, signal.SIGINT)  # what Jupyter's ■ does
        answer = cell.stdout.readline()  # the cell's first line, as soon as it is written
        alive = [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
        out = cell.stdout.read()  # the rest, to the cell's exit
        cell.wait(60)
    finally:
        kill_process_group(cell.pid)
        cell.stdout.close()
    err = stderr.read_text()
    assert answer.startswith("interrupted"), (answer, out, err[-2000:])
    answered = float(answer.split()[1])
    assert answered < tasks_end, f"answered {answered - tasks_end:+.2f} s after the tasks' end"
    assert not alive, f"{len(alive)} workers still running when the cell answered"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    # What stays is Dask's one offload thread per process (see helpers.runners.dask).
    assert out.split()[1:] in (["MainThread"], ["Dask-Offload_0", "MainThread"])


def test_only_dask_s_one_offload_thread_outlives_a_cluster_and_it_is_reused():
    import threading

    before = {t.ident for t in threading.enumerate()}
    run_dask(cpu_task, [(100,)], workers=1)
    after_one = {t.ident: t.name for t in threading.enumerate() if t.ident not in before}
    assert set(after_one.values()) <= {"Dask-Offload_0"}, after_one
    run_dask(cpu_task, [(100,)], workers=1)
    after_two = {t.ident: t.name for t in threading.enumerate() if t.ident not in before}
    assert after_two == after_one  # the same thread, not one more per cluster
