"""Chapter 00's demo: the GIL makes threads take turns; processes compute at once."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from _notebooks import solution
from _timing import busy, one_core, skip_if_busy

from helpers.chapters.ch00_start_here import (
    chunked_compress_task,
    chunked_cpu_task,
    compare_gil,
    gil_tasks,
    record_cpu_work,
    recorded_io_task,
    run_work,
)
from helpers.exercises import check
from helpers.timeline import Recorder

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"




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
    # Alive at the same time for most of their lives, whatever the load...
    spans = [[e for e in processes.trace if e.lane == lane and e.kind != "start"] for lane in lanes]
    first = [min(e.start_ns for e in lane) for lane in spans]
    last = [max(e.end_ns for e in lane) for lane in spans]
    assert min(last) - max(first) > 0.5 * min(b - a for a, b in zip(first, last))
    # ...and computing at the same time when the machine has the cores to show it.
    if not busy():
        assert processes.trace.overlap_ns(*lanes) > 0.05e9
    assert [e.kind for e in processes.trace.select(lane=lanes[0])][0] == "start"


@pytest.mark.timeout(120)
def test_processes_speed_up_cpu_work_and_threads_speed_up_io():
    # Best of three: a speed-up is a property of the machine, a slow run one of its neighbours.
    io = compare_gil("io", workers=2, task_seconds=0.2)
    assert io.speedup("threads") > 1.6  # waiting needs no core: true on one core too
    cpu = [compare_gil("cpu", workers=2, task_seconds=0.3, start_method="forkserver")
           for _ in range(3)]
    skip_if_busy(max(c.speedup("processes") for c in cpu), "2 processes vs serial")
    assert max(c.speedup("processes") for c in cpu) > 1.3
    assert min(c.speedup("threads") for c in cpu) < 1.3


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"mode": "fibers"}, "mode"), ({"workers": 0}, "workers"), ({"kind": "gpu"}, "kind"),
    ({"task_seconds": 0}, "task_seconds"), ({"start_method": "vfork"}, "start_method"),
])
def test_bad_parameters_are_named(kwargs, name):
    args = {"mode": "processes", **kwargs}
    with pytest.raises(ValueError, match=name):
        run_work(args.pop("mode"), **args)


@pytest.mark.timeout(120)
def test_threads_speed_up_zlib_because_it_releases_the_gil():
    best = 0.0
    for _ in range(3):  # best of three: a speed-up is the machine's, a slow run its neighbours'
        best = max(best, compare_gil("zlib", workers=2, task_seconds=0.2).speedup("threads"))
        if best > 1.3:
            break
    skip_if_busy(best, "2 threads compressing vs serial")
    assert best > 1.3, f"two threads compressing were only {best:.2f}× as fast as serial"


def test_compress_task_records_its_work_and_really_compresses():
    result = chunked_compress_task(300_000, "task 0")
    assert 0 < result.value < 300_000  # the text compresses
    runs = [e for e in result.recording.events if e.kind == "run"]
    assert {e.label for e in runs} == {"task 0"} and len(runs) >= 4  # one span per 64 KiB piece
    fn, tasks = gil_tasks("zlib", workers=3, task_seconds=0.01)
    assert fn is chunked_compress_task and [t[1] for t in tasks] == ["task 0", "task 1", "task 2"]


@pytest.mark.parametrize(("call", "name"), [
    (lambda: record_cpu_work(math.inf, Recorder(), "a", "b"), "iterations"),
    (lambda: record_cpu_work(float("nan"), Recorder(), "a", "b"), "iterations"),
    (lambda: record_cpu_work(-1, Recorder(), "a", "b"), "iterations"),
    (lambda: record_cpu_work(10**12, Recorder(), "a", "b"), "iterations"),
    (lambda: record_cpu_work(10, Recorder(), "a", "b", chunk=0), "chunk"),
    (lambda: record_cpu_work(10, Recorder(), "", "b"), "label"),
    (lambda: chunked_cpu_task(math.inf, 10, "a"), "iterations"),
    (lambda: chunked_cpu_task(10, -5, "a"), "chunk"),
    (lambda: chunked_cpu_task(10, 5, None), "label"),
    (lambda: chunked_compress_task(0, "a"), "size"),
    (lambda: chunked_compress_task(10**12, "a"), "size"),
    (lambda: recorded_io_task(float("nan"), "a"), "seconds"),
    (lambda: gil_tasks("gpu"), "kind"),
    (lambda: gil_tasks("cpu", task_seconds=math.inf), "task_seconds"),
    (lambda: compare_gil("cpu", workers=0), "workers"),
    (lambda: compare_gil("cpu", start_method="vfork"), "start_method"),
])
def test_every_parameter_is_checked_where_it_enters(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_record_cpu_work_wants_a_recorder_and_compare_gil_a_callable_progress():
    with pytest.raises(TypeError, match="recorder"):
        record_cpu_work(10, [], "a", "b")
    with pytest.raises(TypeError, match="progress"):
        compare_gil("io", workers=1, task_seconds=0.01, progress="yes")


def test_exercise_solutions_pass(monkeypatch, tmp_path):
    import helpers.exercises

    monkeypatch.setattr(helpers.exercises, "QUICK", False)  # as a reader sees it
    for exercise, marker in (("00.1", "resize 500 photos"), ("00.2", '"io": {"threads"'),
                             ("00.3", "def compress_all")):
        assert not check(exercise, ...).answered
        feedback = check(exercise, solution("00_start_here.ipynb", marker, tmp_path))
        if feedback.inconclusive:
            # Said only when the threads overlapped but got less than two cores: the machine's load.
            pytest.skip(f"{exercise}: the machine had no free core: {feedback!r}")
        assert feedback, repr(feedback)


def test_exercise_00_1_gives_one_verdict_that_names_no_workload():
    from helpers.exercises.ch00 import WORKLOADS

    right = dict(zip(WORKLOADS, ["cpu", "io", "cpu", "io", "cpu", "io"]))
    assert check("00.1", right) and len(check("00.1", right).points) == len(WORKLOADS)
    wrong = {**right, "compress a log file": "io", "wait for the user to click": "cpu"}
    feedback = check_as_reader("00.1", wrong)
    assert not feedback and len(feedback.points) == 1
    assert "4 of 6" in feedback.points[0].message
    assert not any(task in feedback.points[0].message for task in WORKLOADS)


def check_as_reader(exercise, answer):
    import helpers.exercises

    saved, helpers.exercises.QUICK = helpers.exercises.QUICK, False
    try:
        return check(exercise, answer)
    finally:
        helpers.exercises.QUICK = saved


def _module(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_exercise_00_3_says_what_is_wrong(monkeypatch, tmp_path):
    import helpers.exercises

    monkeypatch.setattr(helpers.exercises, "QUICK", False)
    raw = _module(tmp_path, "raw.py", "def compress_all(blocks, threads):\n    return blocks\n")
    feedback = check("00.3", raw)
    assert not feedback and any("decompress" in p.message for p in feedback.points)
    assert not check("00.3", _module(tmp_path, "two.py", "def compress_all(blocks):\n    pass\n"))
    assert not check("00.3", str(tmp_path / "missing.py"))
    # The unedited template: right output, one thread. The record says so on any machine.
    serial = _module(tmp_path, "serial.py", "import zlib\n\ndef compress_all(blocks, threads):\n"
                     "    return [zlib.compress(b) for b in blocks]\n")
    feedback = check("00.3", serial)
    assert not feedback and "one thread" in feedback.points[-1].message, repr(feedback)
    # Two threads, each joined before the next starts: two threads, never at once.
    joined = _module(tmp_path, "joined.py", (
        "import threading\nfrom zlib import compress\n\ndef compress_all(blocks, threads):\n"
        "    out = [None] * len(blocks)\n"
        "    def work(k):\n"
        "        for i in range(k, len(blocks), threads):\n"
        "            out[i] = compress(blocks[i])\n"
        "    for k in range(threads):\n"
        "        t = threading.Thread(target=work, args=(k,))\n"
        "        t.start()\n"
        "        t.join(60)\n"
        "    return out\n"))
    feedback = check("00.3", joined)
    assert not feedback and "one after the other" in feedback.points[-1].message, repr(feedback)
    # A thread per block: more threads than asked for.
    many = _module(tmp_path, "many.py", (
        "import zlib\nfrom concurrent.futures import ThreadPoolExecutor\n\n"
        "def compress_all(blocks, threads):\n"
        "    with ThreadPoolExecutor(len(blocks)) as pool:\n"
        "        return list(pool.map(zlib.compress, blocks))\n"))
    feedback = check("00.3", many)
    assert not feedback and "4 threads" in feedback.points[-1].message, repr(feedback)


def test_exercise_00_3_on_one_core_is_inconclusive_and_says_why(monkeypatch, tmp_path):
    """Pinned to one core (as ``taskset -c 0``), the right answer is neither ✓ nor ✗: the check
    says the machine gives one core, and not to wait for a quieter moment."""
    import helpers.exercises

    monkeypatch.setattr(helpers.exercises, "QUICK", False)
    answer = solution("00_start_here.ipynb", "def compress_all", tmp_path)
    with one_core():
        feedback = check("00.3", answer)
        summary = repr(feedback).splitlines()[0]  # says what the machine is while it is so
    assert feedback.inconclusive and not feedback.wrong, repr(feedback)
    unsure = [p.message for p in feedback.points if p.ok is None]
    assert len(unsure) == 1 and "one core" in unsure[0] and "quieter" not in unsure[0]
    assert "one core" in summary and "quieter" not in summary


def test_exercise_00_3_reads_overlap_and_cores_from_the_record():
    from helpers.exercises.ch00 import _evidence

    ms = 1_000_000
    # Two threads, in progress together for 30 ms, each on a core of its own the whole time.
    parallel = [(0, 0, 40 * ms, 40 * ms), (1, 10 * ms, 40 * ms, 30 * ms)]
    assert _evidence(parallel) == (2, 1.0, 70 / 40)
    # The same spans, but sharing one core: in progress together, half the CPU each.
    shared = [(0, 0, 40 * ms, 25 * ms), (1, 10 * ms, 40 * ms, 15 * ms)]
    threads, share, cores = _evidence(shared)
    assert (threads, share) == (2, 1.0) and cores == 1.0
    # One after the other: no overlap at all.
    threads, share, _ = _evidence([(0, 0, 10 * ms, 10 * ms), (1, 10 * ms, 20 * ms, 10 * ms)])
    assert (threads, share) == (2, 0.0)
