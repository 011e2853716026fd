"""Chapter 00b: threads lose updates without a lock and none with it; an I/O thread beside a
CPU-bound one wakes late by about a switch interval; exercise 00.4 judges from what it saw."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
from _notebooks import solution
from _timing import one_core, skip_if_busy

from helpers.chapters import ch00b_threads as th
from helpers.exercises import check
from helpers.timeline import Trace

NOTEBOOK = "00b_threads.ipynb"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_read_sleep_write_loses_updates_and_the_lock_loses_none():
    racy = th.count_in_threads(th.add_with_gap, 4, 2_000)
    assert racy.expected == 8_000 and racy.lost > 0, str(racy)
    locked = th.count_in_threads(th.add_locked, 4, 2_000)
    assert locked.counted == locked.expected == 8_000 and locked.lost == 0, str(locked)
    # Each thread recorded its own span, in a lane of its own.
    assert len(locked.trace.lanes()) == 4
    assert all(len(locked.trace.select(lane=lane, kind="run")) == 1
               for lane in locked.trace.lanes())


def test_one_thread_never_loses_and_the_bare_loop_counts_what_it_can():
    for add in (th.add_with_gap, th.add_with_call, th.add_bare):
        result = th.count_in_threads(add, 1, 2_000)
        assert result.lost == 0 and result.counted == 2_000, str(result)
    bare = th.count_in_threads(th.add_bare, 4, 50_000)
    assert 0 <= bare.lost < bare.expected and "lost" in str(bare)


def test_a_call_between_read_and_write_loses_when_threads_switch_often():
    previous = sys.getswitchinterval()
    try:
        sys.setswitchinterval(1e-5)  # a switch request every 10 µs: the call is hit many times
        lost = max(th.count_in_threads(th.add_with_call, 4, 50_000).lost for _ in range(3))
    finally:
        sys.setswitchinterval(previous)
    assert lost > 0


@pytest.mark.timeout(60)
def test_an_io_thread_beside_a_cpu_bound_one_wakes_late_and_a_short_interval_helps():
    before = sys.getswitchinterval()
    alone = th.convoy(60, 0.001, neighbour=False)
    beside = th.convoy(60, 0.001, neighbour=True)
    faster = th.convoy(60, 0.001, neighbour=True, switch_interval_s=0.0005)
    assert sys.getswitchinterval() == before  # restored in convoy's finally
    assert faster.switch_interval_s == 0.0005 and beside.switch_interval_s == before
    assert len(alone.late_ms) == 60 and {e.lane.split(" [")[0] for e in beside.trace} == {
        "I/O thread", "CPU thread"}
    ratio = beside.p99_ms / max(alone.p99_ms, 1e-6)
    shown = ratio > 3 and faster.p50_ms < 0.5 * beside.p50_ms
    if not shown and (beside.starved or faster.starved):
        # Starved of a core by other programs, the neighbour waits for the GIL more than it
        # holds it: the run's own evidence that it could not show a convoy.
        pytest.skip(f"inconclusive: the CPU thread ran {beside.neighbour_cpu_share:.0%} and "
                    f"{faster.neighbour_cpu_share:.0%} of the time\n{alone}\n{beside}")
    skip_if_busy(ratio, "p99 beside a CPU-bound thread / alone", at_most=3)
    assert ratio > 3, f"{alone}\n{beside}"
    # The wait is about one switch interval: at a tenth of it, the median is clearly shorter.
    assert faster.p50_ms < 0.5 * beside.p50_ms, f"{beside}\n{faster}"
    assert threading.active_count() == 1 or all(
        t.name not in ("I/O thread", "CPU thread") for t in threading.enumerate())


@pytest.mark.parametrize(("call", "name"), [
    (lambda: th.count_in_threads(th.add_bare, 0, 10), "threads"),
    (lambda: th.count_in_threads(th.add_bare, 2, -1), "increments"),
    (lambda: th.count_in_threads(th.add_bare, 2, 10**9), "increments"),
    (lambda: th.count_in_threads("add", 2, 10), "add"),
    (lambda: th.convoy(0), "samples"),
    (lambda: th.convoy(10, period_s=float("nan")), "period_s"),
    (lambda: th.convoy(10, neighbour="yes"), "neighbour"),
    (lambda: th.convoy(10, switch_interval_s=0.0), "switch_interval_s"),
    (lambda: th.plot_convoy("result"), "result"),
])
def test_bad_parameters_are_named_before_any_thread_starts(call, name):
    started = threading.active_count()
    with pytest.raises((ValueError, TypeError), match=name):
        call()
    assert threading.active_count() == started


def test_the_panel_runs_and_puts_the_switch_interval_back():
    before = sys.getswitchinterval()
    panel = th.make_panel()
    summary = panel.run(threads=2, increments=1_000, variant="locked read, sleep(0), write",
                        switch_ms=0.5)
    assert "0 lost" in summary and sys.getswitchinterval() == before
    assert "lost" in panel.run(variant="read, sleep(0), write")
    with pytest.raises(ValueError, match="increments"):  # minutes of sleep(0): refused at once
        panel.run(increments=300_000)


def _starting_module(tmp_path) -> str:
    cells = json.loads((NOTEBOOKS / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    text = next("".join(c["source"]) for c in cells
                if c["cell_type"] == "code" and "".join(c["source"]).startswith("%%writefile"))
    path = tmp_path / "start.py"
    path.write_text(text.split("\n", 1)[1], encoding="utf-8")
    return str(path)


def _reader(monkeypatch):
    import helpers.exercises

    monkeypatch.setattr(helpers.exercises, "QUICK", False)  # wrong answers are feedback


def test_exercise_00_4_solution_passes_and_the_starting_version_does_not(monkeypatch, tmp_path):
    _reader(monkeypatch)
    assert not check("00.4", ...).answered
    feedback = check("00.4", solution(NOTEBOOK, "def visit", tmp_path))
    assert feedback, repr(feedback)
    start = check("00.4", _starting_module(tmp_path))
    assert start.wrong and "visits were lost" in repr(start), repr(start)


def test_exercise_00_4_is_inconclusive_where_even_no_lock_loses_nothing(monkeypatch, tmp_path):
    """A machine that lets no two threads race (busy, one core) would pass a wrong answer: the
    check's baseline (the same stress, no lock) shows it, and the verdict is inconclusive."""
    import threading

    import helpers.exercises.ch00 as ch00

    _reader(monkeypatch)
    lock = threading.Lock()

    def never_races(counts, pages):  # what the unlocked baseline counts on such a machine
        for page in pages:
            with lock:
                counts[page] = counts.get(page, 0) + 1

    monkeypatch.setattr(ch00, "_unlocked_visit", never_races)
    feedback = check("00.4", solution(NOTEBOOK, "def visit", tmp_path))
    assert feedback.inconclusive and not feedback.wrong, repr(feedback)
    assert "neither was one" in repr(feedback)


def test_exercise_00_4_says_what_is_wrong_without_the_answer(monkeypatch, tmp_path):
    _reader(monkeypatch)
    header = "import threading\nimport time\n\nlock = threading.Lock()\n\n"
    # A lock around the wait too: nothing lost, but the fetches never overlap.
    everything = tmp_path / "everything.py"
    everything.write_text(header + (
        "def visit(counts, pages):\n"
        "    for page in pages:\n"
        "        with lock:\n"
        "            time.sleep(0.002)\n"
        "            counts[page] = counts.get(page, 0) + 1\n"), encoding="utf-8")
    feedback = check("00.4", str(everything))
    assert feedback.wrong and "no two threads ever fetched" in repr(feedback), repr(feedback)
    assert "with lock" not in repr(feedback)
    # No gap and no lock: safe enough at 5 ms, caught by the stress run.
    unlocked = tmp_path / "unlocked.py"
    unlocked.write_text(header + (
        "def visit(counts, pages):\n"
        "    for page in pages:\n"
        "        time.sleep(0.002)\n"
        "        counts[page] = counts.get(page, 0) + 1\n"), encoding="utf-8")
    feedback = check("00.4", str(unlocked))
    assert feedback.wrong and "were lost" in repr(feedback), repr(feedback)
    # The fetch removed: the check cannot see the threads wait, and says so.
    no_fetch = tmp_path / "no_fetch.py"
    no_fetch.write_text(header + (
        "def visit(counts, pages):\n"
        "    for page in pages:\n"
        "        with lock:\n"
        "            counts[page] = counts.get(page, 0) + 1\n"), encoding="utf-8")
    feedback = check("00.4", str(no_fetch))
    assert feedback.wrong and "no fetch was seen" in repr(feedback), repr(feedback)
    assert not check("00.4", str(tmp_path / "missing.py"))


@pytest.mark.timeout(60)
def test_exercise_00_5_judges_a_prediction_against_a_run(monkeypatch):
    _reader(monkeypatch)
    assert not check("00.5", ...).answered
    assert not check("00.5", "two")
    feedback = check("00.5", solution(NOTEBOOK, "check(\"00.5\"", None))
    if feedback.inconclusive:
        pytest.skip(f"this machine cannot time the GIL's wake-up now: {feedback!r}")
    assert feedback, repr(feedback)
    for wrong in (0.0, 100.0):
        feedback = check("00.5", wrong)
        assert feedback.inconclusive or feedback.wrong, repr(feedback)


def test_exercise_00_5_on_one_core_judges_no_prediction(monkeypatch):
    """Pinned to one core, the CPU thread's turns on it add to the GIL's wait: neither the right
    prediction nor a wrong one gets ✓ or ✗, and the check says why."""
    _reader(monkeypatch)
    with one_core():
        for prediction in (2.0, 0.0):
            feedback = check("00.5", prediction)
            assert feedback.inconclusive and not feedback.wrong, repr(feedback)
            assert "one core" in feedback.points[0].message


def test_exercise_00_5_reads_a_wait_for_a_core_as_inconclusive(monkeypatch):
    """A median far beyond the switch interval is the machine's, not the GIL's: the right
    prediction is not told ✗ then; with a median the GIL explains, it is ✓ and a wrong one ✗."""
    import helpers.chapters.ch00b_threads as ch00b
    import helpers.exercises.ch00 as ch00

    _reader(monkeypatch)
    monkeypatch.setattr(ch00, "usable_cores", lambda: 2)
    beside_ms = [7.0]

    def canned(samples, period_s, neighbour=True, switch_interval_s=None):
        late = beside_ms * samples if neighbour else [0.05] * samples
        return th.ConvoyResult(neighbour, switch_interval_s or 0.005, late, Trace(),
                               0.95 if neighbour else None)

    monkeypatch.setattr(ch00b, "convoy", canned)
    feedback = check("00.5", 2.0)
    assert feedback.inconclusive and "far more than the GIL" in feedback.points[0].message
    beside_ms[:] = [2.1]
    assert check("00.5", 2.0) and check("00.5", 0.0).wrong
