"""Chapter 02 exercises: the notebook's own solutions pass their checks; wrong answers get told
what is wrong (and never the answer); an unanswered exercise never raises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import helpers.exercises
from helpers.exercises import check

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_ipc.ipynb"
_CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.fixture(autouse=True)
def as_a_reader(monkeypatch):
    monkeypatch.setattr(helpers.exercises, "QUICK", False)  # feedback, not AssertionError


def _solution_blocks(exercise_id: str) -> list[str]:
    """The code blocks of the solution that follows the exercise's check cell in the notebook."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "code" and f'check("{exercise_id}", answer)' in "".join(
                cell["source"]):
            following = "".join(cells[index + 1]["source"])
            assert cells[index + 1]["cell_type"] == "markdown" and "<details>" in following
            return _CODE_BLOCK.findall(following)
    raise AssertionError(f"no check cell for {exercise_id} in {NOTEBOOK.name}")


def _write_module(block: str, folder: Path) -> Path:
    """Run a ``%%writefile {SCRATCH}/name.py`` block the way IPython would, into `folder`."""
    first, body = block.split("\n", 1)
    assert first.startswith("%%writefile {SCRATCH}/"), first
    path = folder / first.rsplit("/", 1)[1].strip()
    path.write_text(body, encoding="utf-8")
    return path


def test_unanswered_exercises_never_raise():
    for exercise_id in ("02.1", "02.2"):
        feedback = check(exercise_id, ...)
        assert not feedback.answered and not feedback.passed


def test_the_notebooks_solution_to_02_1_passes(tmp_path):
    writefile, answer_cell = _solution_blocks("02.1")
    path = _write_module(writefile, tmp_path)
    assert 'answer = f"{SCRATCH}/ch02_worker.py"' in answer_cell
    feedback = check("02.1", str(path))
    assert feedback.passed, repr(feedback)


@pytest.mark.parametrize("body, wrong", [
    ("def square_records(inbox, outbox):\n"
     "    while (r := inbox.get(timeout=30)) is not None:\n"
     "        outbox.put({'id': r['id'], 'y': r['x'] * 2})\n"
     "    outbox.put(None)\n", "wrong 'y'"),
    ("def square_records(inbox, outbox):\n"
     "    while (r := inbox.get(timeout=30)) is not None:\n"
     "        if r['id'] % 100:\n"
     "            outbox.put({'id': r['id'], 'y': r['x'] ** 2})\n"
     "    outbox.put(None)\n", "records got no reply"),
    ("def square_records(inbox, outbox):\n"
     "    while (r := inbox.get(timeout=30)) is not None:\n"
     "        outbox.put({'id': r['id'], 'y': r['x'] ** 2})\n", "no None came"),
    ("def square_records(inbox, outbox):\n"
     "    raise RuntimeError('oops')\n", "exit code 1"),
    ("def something_else(inbox, outbox):\n    pass\n", "should define"),
])
def test_wrong_workers_are_told_what_is_wrong(tmp_path, body, wrong):
    path = tmp_path / "ch02_worker.py"
    path.write_text(body, encoding="utf-8")
    feedback = check("02.1", str(path))
    assert not feedback.passed
    assert any(wrong in p.message for p in feedback.points if not p.ok), repr(feedback)


def test_02_1_refuses_what_is_not_a_module(tmp_path):
    assert "no file" in repr(check("02.1", str(tmp_path / "missing.py")))
    assert "should be the path" in repr(check("02.1", 42))


def test_the_notebooks_solution_to_02_2_passes_and_a_wrong_pick_is_told(monkeypatch):
    from helpers.exercises import ch02

    monkeypatch.setattr(ch02, "_ARRAY_BYTES", 16 << 20)  # the same ranking, a sixth the time
    ch02._measured_rates.cache_clear()
    (solution,) = _solution_blocks("02.2")
    namespace = {"check": check}
    exec(solution, namespace)
    assert check("02.2", namespace["answer"]).passed
    wrong = check("02.2", "Queue")
    assert not wrong.passed and "shared memory" not in repr(wrong)  # never gives the answer
    assert "should be one of" in repr(check("02.2", "carrier pigeon"))
    ch02._measured_rates.cache_clear()
