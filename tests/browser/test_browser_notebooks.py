"""Every chapter in a real browser: JupyterLab opens it, runs all cells, a control moves and the
timeline is redrawn. The machinery (server, Chromium, LabDriver) is in this folder's conftest.py
and the underscored modules beside it.

Run with ``pytest -m browser tests/browser``; ``CC_BROWSER_NOTEBOOKS=dir`` points it elsewhere.
Screenshots: ``test-artifacts/browser/<chapter>.png`` (and ``-FAILED.png`` + console on failure).
"""

from __future__ import annotations

import json
import time

import pytest

# The kernel start and the chapter's quick run, per chapter; above pyproject's default 120 s.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def test_lab_settings_turn_news_and_autosave_off(lab):
    notification = lab.api("GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert notification["settings"]["fetchNews"] == "false"
    assert notification["settings"]["checkForUpdates"] is False
    docmanager = lab.api("GET", "/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    assert docmanager["settings"]["autosave"] is False


def test_chapter_runs_all_cells_and_its_panel_redraws(chapter, lab, open_page):
    page = open_page(lab)
    started = time.perf_counter()
    page.open(chapter)
    opened = time.perf_counter() - started
    run_all = page.run_all()
    problems = page.problems()
    page.screenshot(chapter.stem)
    assert not problems, f"{chapter.name} after Run All:\n" + "\n".join(problems)

    if "make_panel(" not in chapter.read_text(encoding="utf-8"):
        # A part without a panel (its chapter's other part has it): Run All was the test.
        print(f"{chapter.name}: no panel in this part")
        return
    what, before, after = page.rerun_panel()
    page.screenshot(chapter.stem)
    assert before and after, "the panel has no picture (.cc-plot)"
    assert after["src"] != before["src"], "the picture was not replaced"
    assert after["digest"] != before["digest"], (
        f"{what} and Run gave the same picture, byte for byte ({after['digest']})")
    problems = page.problems()
    assert not problems, f"{chapter.name} after {what} and Run:\n" + "\n".join(problems)
    assert not page.news_toasts(), "JupyterLab asked about news: the settings override failed"
    print(f"{chapter.name}: opened + kernel idle {opened:.1f} s, Run All {run_all:.1f} s, "
          f"total {time.perf_counter() - started:.1f} s (server start {lab.start_seconds:.1f} s)")


# A notebook whose Run All hits an error, with a panel whose Run fails as the real Panel reports
# it (a traceback in an Output inside the panel): both must be found.
_PANEL_THAT_FAILS = """\
import traceback
import ipywidgets as w
choice = w.Dropdown(options=["a", "b"], value="a")
choice.add_class("cc-control")
run = w.Button(description="Run")
run.add_class("cc-run")
errors = w.Output()
def on_click(_):
    with errors:
        try:
            raise RuntimeError("demo failed on purpose")
        except RuntimeError:
            traceback.print_exc()
run.on_click(on_click)
panel = w.VBox([choice, run, errors])
panel.add_class("cc-panel")
panel"""


def test_errors_are_detected(start_lab, open_page, tmp_path):
    root = tmp_path / "notebooks"
    root.mkdir()
    notebook = root / "50_error.ipynb"
    cells = [_PANEL_THAT_FAILS, "x = 1", "1/0", "print('not reached')"]
    notebook.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src,
                   "outputs": [], "execution_count": None} for i, src in enumerate(cells)],
    }))
    server = start_lab(root)
    try:
        page = open_page(server)
        page.open(notebook)
        page.run_all()
        problems = page.problems()
        assert any("ZeroDivisionError" in p for p in problems), problems
        assert any("cell 3 did not run" in p for p in problems), problems
        page.page.locator(".cc-panel .cc-run").click()
        page.page.locator(".cc-panel .jp-OutputArea-output").first.wait_for(timeout=30_000)
        problems = page.problems()
        assert any(p.startswith("the panel shows") and "demo failed on purpose" in p
                   for p in problems), problems
    finally:
        server.stop()
