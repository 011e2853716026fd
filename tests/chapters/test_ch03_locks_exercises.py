"""Chapter 03's exercises: the notebooks' own solutions pass their checks, the code the reader
starts from fails them, wrong answers that happen to work this time fail too, and an unanswered
check never raises.

The solutions live in the notebooks (03.1 in 03a, 03.2 in 03b), in collapsed markdown
(``<details>``), so Run All never runs them; these tests read them from there, write them where
``%%writefile`` would, and check them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import helpers.exercises
from helpers.exercises import check

NOTEBOOKS = [Path(__file__).resolve().parents[2] / "notebooks" / name
             for name in ("03a_locks.ipynb", "03b_primitives.ipynb")]
_WRITEFILE = re.compile(r"%%writefile \{WORK\}/(\w+\.py)\n(.*)", re.S)
_FENCE = re.compile(r"```python\n(.*?)```", re.S)


def _cells(kind: str, notebooks=NOTEBOOKS) -> list[str]:
    found = []
    for notebook in notebooks:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        found += ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]
    return found


def _modules(sources: list[str]) -> dict[str, str]:
    """file name -> module text, for every %%writefile {WORK}/name.py in `sources`."""
    found = {}
    for source in sources:
        match = _WRITEFILE.match(source.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _solutions() -> dict[str, str]:
    blocks = [block for cell in _cells("markdown") if "<details>" in cell
              for block in _FENCE.findall(cell)]
    return _modules(blocks)


def _starting_code() -> dict[str, str]:
    return _modules(_cells("code"))


EXERCISES = {"03.1": "counter.py", "03.2": "both.py"}
_PART = {"03.1": NOTEBOOKS[0], "03.2": NOTEBOOKS[1]}  # where each exercise sits


@pytest.fixture(autouse=True)
def as_a_reader(monkeypatch):
    monkeypatch.setattr(helpers.exercises, "QUICK", False)  # feedback, not AssertionError


def test_solutions_are_hidden_in_the_notebook_and_cover_every_exercise():
    assert set(_solutions()) == set(EXERCISES.values())
    assert set(_starting_code()) == set(EXERCISES.values())
    for source in _cells("code"):
        assert "sorted(names)" not in source and "local += 1" not in source, \
            "a solution sits in a code cell: Run All would run it"


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_each_exercise_sits_in_its_part_with_one_answer_cell(exercise):
    codes = _cells("code", [_PART[exercise]])
    assert f'check("{exercise}", answer)' in "\n".join(codes)
    (answer_cell,) = [c for c in codes if f'check("{exercise}"' in c]
    assert answer_cell.startswith("answer = ...")
    params = codes[0]
    assert "from helpers.course import QUICK" in params and 'work_folder("ch03")' in params


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_solution_passes_its_check(exercise, tmp_path):
    path = tmp_path / EXERCISES[exercise]
    path.write_text(_solutions()[EXERCISES[exercise]], encoding="utf-8")
    feedback = check(exercise, str(path))
    assert feedback.passed, repr(feedback)


@pytest.mark.parametrize("exercise, complaint", [
    ("03.1", r"lost|slower"),  # lost increments; on a machine too busy to lose any, too slow
    ("03.2", r"stuck"),
])
def test_starting_code_fails_its_check_with_a_hint(exercise, complaint, tmp_path):
    path = tmp_path / EXERCISES[exercise]
    path.write_text(_starting_code()[EXERCISES[exercise]], encoding="utf-8")
    feedback = check(exercise, str(path))
    assert not feedback.passed
    wrong = " ".join(p.message for p in feedback.points if not p.ok)
    assert re.search(complaint, wrong), wrong


def test_a_lock_per_increment_is_right_but_too_slow(tmp_path):
    path = tmp_path / "counter.py"
    path.write_text("def add_up(counter, increments):\n"
                    "    for _ in range(increments):\n"
                    "        with counter.get_lock():\n"
                    "            counter.value += 1\n", encoding="utf-8")
    feedback = check("03.1", str(path))
    assert [p.ok for p in feedback.points] == [True, True, False]


@pytest.mark.parametrize("body", [
    "    counter.value += increments\n",  # one add, no lock: rarely loses in a test, still races
    "    local = increments\n    with counter.get_lock():\n        pass\n"
    "    counter.value += local\n",  # the lock taken, but not around the write
])
def test_an_unlocked_write_is_caught_even_when_nothing_was_lost(body, tmp_path):
    path = tmp_path / "counter.py"
    path.write_text("def add_up(counter, increments):\n" + body, encoding="utf-8")
    feedback = check("03.1", str(path))
    assert not feedback.passed
    wrong = " ".join(p.message for p in feedback.points if not p.ok)
    assert "lost" in wrong or "did not hold the Value's lock" in wrong, wrong


def test_the_lock_taken_by_hand_counts_as_held(tmp_path):
    path = tmp_path / "counter.py"
    path.write_text("def add_up(counter, increments):\n"
                    "    lock = counter.get_lock()\n"
                    "    lock.acquire()\n"
                    "    try:\n"
                    "        counter.value += increments\n"
                    "    finally:\n"
                    "        lock.release()\n", encoding="utf-8")
    assert check("03.1", str(path)).passed


def test_unlocked_critical_section_is_caught(tmp_path):
    path = tmp_path / "both.py"
    path.write_text("def with_both(locks, names, critical):\n    critical()\n", encoding="utf-8")
    feedback = check("03.2", str(path))
    assert not feedback.passed
    assert any("nobody held" in p.message for p in feedback.points if not p.ok)


@pytest.mark.parametrize("answer", [..., "nowhere.py", 42, "notes.txt"])
def test_unanswered_or_malformed_answers_never_raise(answer):
    for exercise in EXERCISES:
        feedback = check(exercise, answer)
        assert not feedback.passed


def _both(tmp_path, body: str):
    path = tmp_path / "both.py"
    path.write_text(body, encoding="utf-8")
    return check("03.2", str(path))


def _wrong(feedback) -> str:
    return " ".join(p.message for p in feedback.points if not p.ok)


def test_a_timeout_and_retry_answer_fails_though_it_never_gets_stuck(tmp_path):
    """What the chapter's deadlock demo does (detect, back off, retry) is not what 03.2 asks."""
    feedback = _both(tmp_path, (
        "import time\n"
        "def with_both(locks, names, critical):\n"
        "    first, second = locks[names[0]], locks[names[1]]\n"
        "    backoff = 0.001 if names[0] == 'A' else 0.004\n"
        "    while True:\n"
        "        first.acquire()\n"
        "        if second.acquire(timeout=0.01):\n"
        "            try:\n"
        "                critical()\n"
        "            finally:\n"
        "                second.release()\n"
        "                first.release()\n"
        "            return\n"
        "        first.release()\n"
        "        time.sleep(backoff)\n"))
    assert not feedback.passed
    wrong = _wrong(feedback)
    assert "give up" in wrong and "line 7" in wrong, wrong
    assert "in this run" in wrong, wrong  # the run's own evidence, not only the code


def test_a_non_blocking_spin_fails(tmp_path):
    feedback = _both(tmp_path, (
        "def with_both(locks, names, critical):\n"
        "    first, second = locks[names[0]], locks[names[1]]\n"
        "    while True:\n"
        "        with first:\n"
        "            if second.acquire(False):\n"
        "                try:\n"
        "                    critical()\n"
        "                finally:\n"
        "                    second.release()\n"
        "                return\n"))
    assert not feedback.passed
    assert "give up" in _wrong(feedback)


def test_a_timeout_the_run_never_reaches_is_still_seen_in_the_code(tmp_path):
    feedback = _both(tmp_path, (
        "def with_both(locks, names, critical):\n"
        "    first, second = (locks[name] for name in sorted(names))\n"
        "    with first, second:\n"
        "        critical()\n"
        "\n"
        "def spare(lock):\n"
        "    return lock.acquire(timeout=1)\n"))
    assert not feedback.passed
    wrong = _wrong(feedback)
    assert "line 7" in wrong and "in this run" not in wrong, wrong


def test_a_plain_blocking_acquire_spelled_out_passes(tmp_path):
    feedback = _both(tmp_path, (
        "def with_both(locks, names, critical):\n"
        "    first, second = (locks[name] for name in sorted(names))\n"
        "    first.acquire(True)\n"
        "    second.acquire(block=True, timeout=None)\n"
        "    try:\n"
        "        critical()\n"
        "    finally:\n"
        "        second.release()\n"
        "        first.release()\n"))
    assert feedback.passed, repr(feedback)


def test_opposite_orders_fail_even_when_no_deadlock_happened(tmp_path):
    """The starting code, with the second worker starting long after the first has finished: it
    cannot get stuck, yet the two take the locks in opposite orders."""
    feedback = _both(tmp_path, (
        "import time\n"
        "def with_both(locks, names, critical):\n"
        "    if names[0] == 'B' and not hasattr(with_both, 'waited'):\n"
        "        time.sleep(1.5)  # the other worker's 30 rounds take well under this\n"
        "        with_both.waited = True\n"
        "    first, second = locks[names[0]], locks[names[1]]\n"
        "    with first:\n"
        "        with second:\n"
        "            critical()\n"))
    assert not feedback.passed
    assert any(p.ok and "never stuck" in p.message for p in feedback.points), repr(feedback)
    assert "took A while it held B" in _wrong(feedback), _wrong(feedback)
