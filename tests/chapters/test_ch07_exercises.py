"""Exercise 07.2 (an idle timeout in an asyncio handler): the notebook's solution passes, its
starting file and a timeout over the whole connection do not; a file the server cannot use is
told apart from a wrong one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.exercises import check
from tests._notebooks import solution

NOTEBOOK = "07b_under_load.ipynb"
_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _template(tmp_path: Path) -> str:
    cells = json.loads((_NOTEBOOKS / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and text.startswith("%%writefile {WORK}/idle_echo.py"):
            path = tmp_path / "idle_echo.py"
            path.write_text(text.split("\n", 1)[1], encoding="utf-8")
            return str(path)
    raise AssertionError("no %%writefile cell of 07.2 in the notebook")


@pytest.fixture(autouse=True)
def _report_not_raise(monkeypatch):
    monkeypatch.setattr("helpers.exercises.QUICK", False)  # a failing check reports, not raises


def test_the_solution_passes(tmp_path):
    feedback = check("07.2", solution(NOTEBOOK, "idle_echo.py", tmp_path))
    assert feedback.passed, repr(feedback)


def test_the_starting_file_fails_on_the_silent_clients_only(tmp_path):
    feedback = check("07.2", _template(tmp_path))
    assert [p.ok for p in feedback.points] == [False, False, True], repr(feedback)
    assert "never closed" in feedback.points[0].message
    assert "wait_for" not in repr(feedback)  # the feedback does not give the answer away


def test_a_timeout_over_the_whole_connection_drops_a_talking_client(tmp_path):
    path = tmp_path / "total.py"
    path.write_text(
        "import asyncio\n\nIDLE_TIMEOUT = 0.3\n\n"
        "async def echo(reader, writer):\n"
        "    while line := await reader.readline():\n"
        "        writer.write(line)\n"
        "        await writer.drain()\n\n"
        "async def handle(reader, writer):\n"
        "    try:\n"
        "        await asyncio.wait_for(echo(reader, writer), IDLE_TIMEOUT)\n"
        "    except TimeoutError:\n"
        "        pass\n"
        "    writer.close()\n")
    feedback = check("07.2", str(path))
    assert not feedback.passed
    assert not feedback.points[-1].ok and "stay connected" in feedback.points[-1].message


@pytest.mark.parametrize("body, says", [
    ("IDLE_TIMEOUT = 0.5\ndef handle(reader, writer):\n    pass\n", "async def handle"),
    ("IDLE_TIMEOUT = 60\nasync def handle(reader, writer):\n    pass\n", "from 0.2 to 2.0"),
    ("async def handle(reader, writer):\n    pass\n", "IDLE_TIMEOUT should be"),
    ("def handle(:\n", "could not use your file"),
])
def test_a_file_the_server_cannot_use_says_why(tmp_path, body, says):
    path = tmp_path / "broken.py"
    path.write_text(body)
    feedback = check("07.2", str(path))
    assert not feedback.passed and says in feedback.points[0].message, repr(feedback)


def test_no_answer_and_a_missing_file(tmp_path):
    assert not check("07.2", ...).answered
    assert "no file" in check("07.2", str(tmp_path / "missing.py")).points[0].message
