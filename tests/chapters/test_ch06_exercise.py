"""Exercise 06.1: the notebook's own solution passes its check; wrong answers hear what is wrong;
the notebook keeps the solution out of Run All and the answer starts unanswered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.exercises import check

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "06_crawler.ipynb"

SHARED_LIMIT = """
from contextlib import contextmanager
from gevent.lock import BoundedSemaphore

class HostLimiter:
    def __init__(self, per_host):
        self._all = BoundedSemaphore(per_host)

    @contextmanager
    def slot(self, url):
        with self._all:
            yield
"""
NO_LIMIT = """
from contextlib import nullcontext

class HostLimiter:
    def __init__(self, per_host):
        pass

    def slot(self, url):
        return nullcontext()
"""


def _cells() -> list[dict]:
    return json.loads(NOTEBOOK.read_text())["cells"]


def _solution() -> str:
    """The module in the notebook's collapsed solution (a markdown cell, so Run All skips it)."""
    for cell in _cells():
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "<details>" in text and "HostLimiter" in text:
            block = re.search(r"```python\n%%writefile \{WORK\}/host_limit.py\n(.*?)```", text,
                              re.S)
            return block.group(1)
    raise AssertionError("the notebook has no solution for exercise 06.1")


@pytest.fixture
def as_a_reader(monkeypatch):
    import helpers.exercises

    monkeypatch.setattr(helpers.exercises, "QUICK", False)  # feedback as a reader sees it


def test_the_notebooks_solution_passes_its_check(tmp_path, as_a_reader):
    module = tmp_path / "host_limit.py"
    module.write_text(_solution())
    feedback = check("06.1", str(module))
    assert feedback.passed, repr(feedback)


@pytest.mark.parametrize(("source", "told"), [
    (SHARED_LIMIT, "one limit shared by every host"),
    (NO_LIMIT, "more than per_host=3"),
])
def test_a_wrong_limiter_is_told_what_is_wrong(tmp_path, as_a_reader, source, told):
    module = tmp_path / "host_limit.py"
    module.write_text(source)
    feedback = check("06.1", str(module))
    assert not feedback.passed
    assert told in repr(feedback)


def test_the_notebooks_smallest_pool_passes_and_wrong_answers_are_told(as_a_reader):
    from helpers.chapters.ch06_crawler import SiteSpec, build_sitemap
    from helpers.exercises.ch06 import PREDICT_LATENCY, PREDICT_PAGES

    text = next("".join(c["source"]) for c in _cells()
                if c["cell_type"] == "markdown" and "<details>" in "".join(c["source"])
                and '"06.2"' in "".join(c["source"]))
    solution = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace = {"build_sitemap": build_sitemap, "SiteSpec": SiteSpec, "check": check,
                 "PREDICT_PAGES": PREDICT_PAGES, "PREDICT_LATENCY": PREDICT_LATENCY}
    exec(solution, namespace)
    assert check("06.2", namespace["answer"]).passed
    depth = build_sitemap(SiteSpec(pages=PREDICT_PAGES)).depth()
    smallest, least = namespace["answer"]["pool"], depth * PREDICT_LATENCY
    # The bound really is flat from there on and one round longer just below it.
    assert max(-(-PREDICT_PAGES // smallest), depth) == depth
    assert -(-PREDICT_PAGES // (smallest - 1)) == depth + 1
    too_small = repr(check("06.2", {"pool": smallest - 1, "seconds": least}))
    assert "more than the" in too_small and "rounds of the site's depth" in too_small
    too_big = repr(check("06.2", {"pool": 2 * smallest, "seconds": least}))
    assert "so does a smaller pool" in too_big
    copied = repr(check("06.2", {"pool": smallest, "seconds": PREDICT_PAGES / smallest
                                 * PREDICT_LATENCY * 2}))
    assert "how many rounds of requests does the crawl still need" in copied
    assert not check("06.2", {"pool": smallest, "seconds": 2 * least}).passed
    serial = build_sitemap(SiteSpec(pages=PREDICT_PAGES, latency=PREDICT_LATENCY)).serial_seconds()
    assert "serial time" in repr(check("06.2", {"pool": smallest, "seconds": serial}))
    assert "whole number" in repr(check("06.2", {"pool": 20.0, "seconds": least}))


def test_unanswered_and_malformed_answers_never_raise(as_a_reader, tmp_path):
    assert not check("06.1", ...).answered and not check("06.2", ...).answered
    assert "should be a dict" in repr(check("06.2", 0.6))
    assert "should be the path" in repr(check("06.1", 42))
    (tmp_path / "empty.py").write_text("x = 1\n")
    assert "should define a class HostLimiter" in repr(check("06.1", str(tmp_path / "empty.py")))


def test_the_exercise_cells_follow_the_convention():
    sources = ["".join(c["source"]) for c in _cells() if c["cell_type"] == "code"]
    # The answer and its check in one cell, starting unanswered.
    for exercise in ("06.1", "06.2"):
        last = f'check("{exercise}", answer)'
        assert any(s.startswith("answer = ...") and s.rstrip().endswith(last)
                   for s in sources), exercise
    markdown = ["".join(c["source"]) for c in _cells() if c["cell_type"] == "markdown"]
    solutions = [m for m in markdown if "<details>" in m]
    assert len(solutions) == 2
    assert all("<summary>Solution (open it after you have tried)</summary>" in m
               for m in solutions)
    assert all(m.count("```python") == 1 for m in solutions)
    assert not any("BoundedSemaphore(per_host)" in s for s in sources)  # the solution is not run
