"""Chapter 02 exercises: the notebook's own solutions pass their checks; wrong answers get told
what is wrong (and never the answer); an unanswered exercise never raises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import helpers.exercises
from helpers.exercises import check

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# Each exercise and the notebook part it is in.
NOTEBOOK_OF = {"02.1": NOTEBOOKS / "02a_ipc.ipynb", "02.2": NOTEBOOKS / "02b_sharing.ipynb"}
_CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.fixture(autouse=True)
def as_a_reader(monkeypatch):
    monkeypatch.setattr(helpers.exercises, "QUICK", False)  # feedback, not AssertionError


def _solution_blocks(exercise_id: str) -> list[str]:
    """The code blocks of the solution that follows the exercise's check cell in the notebook."""
    notebook = NOTEBOOK_OF[exercise_id]
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "code" and f'check("{exercise_id}", answer)' in "".join(
                cell["source"]):
            following = "".join(cells[index + 1]["source"])
            assert cells[index + 1]["cell_type"] == "markdown" and "<details>" in following
            return _CODE_BLOCK.findall(following)
    raise AssertionError(f"no check cell for {exercise_id} in {notebook.name}")


def _write_module(block: str, folder: Path) -> Path:
    """Run a ``%%writefile {WORK}/name.py`` block the way IPython would, into `folder`."""
    first, body = block.split("\n", 1)
    assert first.startswith("%%writefile {WORK}/"), first
    path = folder / first.rsplit("/", 1)[1].strip()
    path.write_text(body, encoding="utf-8")
    return path


def test_unanswered_exercises_never_raise():
    for exercise_id in ("02.1", "02.2"):
        feedback = check(exercise_id, ...)
        assert not feedback.answered and not feedback.passed


def test_the_notebooks_solution_to_02_1_passes(tmp_path):
    (writefile,) = _solution_blocks("02.1")
    path = _write_module(writefile, tmp_path)
    assert path.name == "ch02_worker.py"
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


def test_the_notebooks_solution_to_02_2_passes(tmp_path, start_method):
    (writefile,) = _solution_blocks("02.2")
    path = _write_module(writefile, tmp_path)
    assert path.name == "ch02_normalize.py"
    feedback = check("02.2", str(path))
    assert feedback.passed, repr(feedback)


_NORMALIZE_HEAD = ("from multiprocessing import shared_memory\n"
                   "import numpy as np\n\n"
                   "def normalize(name, length, results):\n"
                   "    block = shared_memory.SharedMemory(name=name)\n"
                   "    numbers = np.ndarray((length,), np.float64, buffer=block.buf)\n"
                   "    total = float(numbers.sum())\n")


@pytest.mark.parametrize("body, wrong", [
    # divides a copy: the block is unchanged
    (_NORMALIZE_HEAD + "    numbers = numbers / total\n    results.put(total)\n"
                       "    del numbers\n    block.close()\n", "did you divide a copy"),
    # right, but removes the block its creator still uses
    (_NORMALIZE_HEAD + "    numbers /= total\n    results.put(total)\n"
                       "    del numbers\n    block.close()\n    block.unlink()\n",
     "only its creator"),
    # uses the array after close(): the pages are gone (the child crashes, or close() raises
    # BufferError where numpy holds an export of the buffer)
    (_NORMALIZE_HEAD + "    numbers /= total\n    results.put(total)\n    block.close()\n"
                       "    numbers.sum()\n", "exit code"),
    # puts the sum after dividing: 1.0, not the sum
    (_NORMALIZE_HEAD + "    numbers /= total\n    results.put(float(numbers.sum()))\n"
                       "    del numbers\n    block.close()\n", "before dividing"),
    # forgets the results queue
    (_NORMALIZE_HEAD + "    numbers /= total\n    del numbers\n    block.close()\n",
     "nothing came through results"),
])
def test_wrong_normalizers_are_told_what_is_wrong(tmp_path, body, wrong):
    path = tmp_path / "ch02_normalize.py"
    path.write_text(body, encoding="utf-8")
    feedback = check("02.2", str(path))
    assert not feedback.passed
    assert any(wrong in p.message for p in feedback.points if not p.ok), repr(feedback)


def test_02_2_refuses_what_is_not_a_module(tmp_path):
    assert "no file" in repr(check("02.2", str(tmp_path / "missing.py")))
    assert "should be the path" in repr(check("02.2", 42))
    (tmp_path / "other.py").write_text("def something(name):\n    pass\n", encoding="utf-8")
    assert "should define" in repr(check("02.2", str(tmp_path / "other.py")))
