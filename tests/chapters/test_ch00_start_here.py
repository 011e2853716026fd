"""Chapter 00's demo: the GIL makes threads take turns; processes compute at once."""

from __future__ import annotations

import pytest

from helpers.chapters.ch00_start_here import compare_gil, run_work


@pytest.mark.timeout(120)
def test_threads_take_turns_and_processes_overlap(start_method):
    threads = run_work("threads", workers=2, task_seconds=0.2)
    processes = run_work("processes", workers=2, task_seconds=0.2, start_method=start_method)
    a, b = threads.trace.lanes()
    # Threads: while one runs Python code the other waits for the GIL.
    overlap = threads.trace.overlap_ns(a, b)
    assert overlap < 0.35 * min(threads.trace.busy_ns(a), threads.trace.busy_ns(b))
    assert threads.trace.select(kind="wait")
    # Processes: each lane runs in its own process, and the lanes run at the same time.
    lanes = [lane for lane in processes.trace.lanes()]
    assert len({e.pid for e in processes.trace}) == 2
    assert processes.trace.overlap_ns(*lanes) > 0.05e9
    assert [e.kind for e in processes.trace.select(lane=lanes[0])][0] == "start"


@pytest.mark.timeout(120)
def test_processes_speed_up_cpu_work_and_threads_speed_up_io():
    # Best of three: a speed-up is a property of the machine, a slow run one of its neighbours.
    cpu = [compare_gil("cpu", workers=2, task_seconds=0.3, start_method="forkserver")
           for _ in range(3)]
    assert max(c.speedup("processes") for c in cpu) > 1.3
    assert min(c.speedup("threads") for c in cpu) < 1.3
    io = compare_gil("io", workers=2, task_seconds=0.2)
    assert io.speedup("threads") > 1.6


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"mode": "fibers"}, "mode"), ({"workers": 0}, "workers"), ({"kind": "gpu"}, "kind"),
    ({"task_seconds": 0}, "task_seconds"), ({"start_method": "vfork"}, "start_method"),
])
def test_bad_parameters_are_named(kwargs, name):
    args = {"mode": "processes", **kwargs}
    with pytest.raises(ValueError, match=name):
        run_work(args.pop("mode"), **args)
