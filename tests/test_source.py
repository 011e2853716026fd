"""`show_source` shows the exact source of what runs; `work_folder` keeps the reader's files."""

from __future__ import annotations

import os
import stat

import pytest

from helpers.course import work_folder
from helpers.source import show_source, source_of
from helpers.workloads import cpu_task


def test_source_of_a_function_is_its_file_and_exact_text():
    where, code = source_of(cpu_task)
    assert where == os.path.join("helpers", "workloads.py")
    assert code.startswith("def cpu_task(")
    assert code in open(os.path.join(os.path.dirname(__file__), "..", where)).read()


def test_shown_source_reads_as_code_in_text_and_highlighted_in_html(tmp_path):
    module = tmp_path / "mine.py"
    module.write_text("def work(n):\n    return n * 2\n")
    shown = show_source(cpu_task, str(module))
    assert shown.text.count("\n# ") == 1 and shown.text.startswith("# helpers")
    assert "def work(n):" in repr(shown)
    html = shown._repr_html_()
    assert html.count("cc-source") == 2 and "<span" in html  # pygments spans: highlighted


def test_a_method_is_shown_dedented():
    class_source = source_of(show_source.__globals__["_Source"].__repr__)[1]
    assert class_source.startswith("def __repr__")


@pytest.mark.parametrize("bad", [None, 3, "not_a_file.py", "README.md", print])
def test_what_has_no_source_is_refused_clearly(bad):
    with pytest.raises((TypeError, ValueError), match="obj|no source"):
        source_of(bad)
    with pytest.raises(ValueError, match="at least one"):
        show_source()


def test_work_folder_is_private_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("CC_WORK", str(tmp_path))
    folder = work_folder("ch04")
    assert folder == str(tmp_path / "ch04")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    (tmp_path / "ch04" / "answer.py").write_text("x = 1\n")
    assert work_folder("ch04") == folder and os.listdir(folder) == ["answer.py"]


def test_work_folder_defaults_beside_the_notebook(tmp_path, monkeypatch):
    monkeypatch.delenv("CC_WORK", raising=False)
    monkeypatch.chdir(tmp_path)
    assert work_folder("ch01") == str(tmp_path / "work" / "ch01")
    with pytest.raises(ValueError, match="chapter"):
        work_folder("../etc")
