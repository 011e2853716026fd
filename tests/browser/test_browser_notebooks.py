"""Every chapter in a real browser: JupyterLab renders what the chapter printed and drew, and its
panel works live: a control moves and the timeline is redrawn. The machinery (server, Chromium,
LabDriver) is in this folder's conftest.py and the underscored modules beside it.

No chapter is executed twice in a test session. tests/notebooks runs every cell of every chapter
headless and keeps the executed copy; here JupyterLab opens that copy (every output must render,
every picture load), then runs only the cells the panel needs (its parameters, its imports and
its own cell, found by `_panel_cells`) and moves a control. So run tests/notebooks first (the
whole suite does: browser tests come last); a chapter without a fresh executed copy is skipped,
or fails under CI.

Run with ``pytest -m browser tests/browser``; ``CC_BROWSER_NOTEBOOKS=dir`` points it elsewhere.
Screenshots: ``test-artifacts/browser/<chapter>.png`` (and ``-FAILED.png`` + console on failure).
"""

from __future__ import annotations

import json
import os
import time

import pytest
from _panel_cells import cells_for_panel
from _paths import executed_copy

# The kernel start and the chapter's quick run, per chapter; above pyproject's default 120 s.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def test_lab_settings_turn_news_and_autosave_off(lab):
    notification = lab.api("GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert notification["settings"]["fetchNews"] == "false"
    assert notification["settings"]["checkForUpdates"] is False
    docmanager = lab.api("GET", "/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    assert docmanager["settings"]["autosave"] is False


def test_chapter_renders_and_its_panel_redraws(chapter, lab, open_page):
    executed = executed_copy(chapter)
    if executed is None:
        reason = (f"no executed copy of {chapter.name} newer than it in test-artifacts/notebooks: "
                  "run tests/notebooks first")
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    page = open_page(lab)
    started = time.perf_counter()
    page.open(executed)
    opened = time.perf_counter() - started
    problems = page.problems(widgets=False)
    images = page.images()
    page.screenshot(chapter.stem)
    assert not problems, f"{chapter.name} as executed, in JupyterLab:\n" + "\n".join(problems)
    assert not images["broken"], f"pictures that did not load: {images['broken']}"
    needed = cells_for_panel(chapter)
    if needed is None:
        # A part without a panel (its chapter's other part has it): rendering was the test.
        print(f"{chapter.name}: {images['count']} pictures rendered, no panel in this part")
        return
    assert images["count"], f"{chapter.name} has a panel but no picture among its outputs"
    page.clear_outputs()
    ran = page.run_cells(needed)
    problems = page.problems(only=needed)
    assert not problems, f"{chapter.name} after running cells {needed}:\n" + "\n".join(problems)
    what, before, after = page.rerun_panel()
    page.screenshot(chapter.stem)
    assert before and after, "the panel has no picture (.cc-plot)"
    assert after["src"] != before["src"], "the picture was not replaced"
    assert after["digest"] != before["digest"], (
        f"{what} and Run gave the same picture, byte for byte ({after['digest']})")
    problems = page.problems(only=needed)
    assert not problems, f"{chapter.name} after {what} and Run:\n" + "\n".join(problems)
    assert not page.news_toasts(), "JupyterLab asked about news: the settings override failed"
    print(f"{chapter.name}: opened + kernel idle {opened:.1f} s, {images['count']} pictures, "
          f"cells {needed} {ran:.1f} s, total {time.perf_counter() - started:.1f} s "
          f"(server start {lab.start_seconds:.1f} s)")


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
