"""Driving a JupyterLab page the way a reader would.

`LabDriver` opens a chapter, waits for a really idle kernel, does Run > Run All Cells, waits for
the last cell, collects errors, moves a control of the chapter's panel (CSS classes from
CONTRIBUTING.md) and checks the timeline is redrawn. No step sleeps for a fixed time: each waits
for a condition, with a timeout. The conditions are JavaScript run in the page, below.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

from _paths import ARTIFACTS
from _server import LabServer

# Timeouts, each a ceiling for a wait on a condition (the measured times are far below them).
OPEN_MS = 90_000  # page load + kernel start: measured 3-6 s
RUN_ALL_MS = int(float(os.environ.get("CC_BROWSER_RUN_ALL_SECONDS", "240")) * 1000)
PANEL_RUN_MS = 120_000  # one re-run of the chapter's demo with quick parameters
ACTION_MS = 15_000  # a click, a menu, a selector that is already there
# Words that make a stderr output a failure, as in tests/notebooks/test_notebooks.py.
STDERR_WORDS = ("Traceback", "Warning", "Error", "warning:")


# Finds the NotebookPanel of `path` in the app (window.jupyterapp, exposed by the server flag).
_FIND_PANEL = """
const findPanel = (path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.content.model) return w;
  }
  return null;
};
const starPrompt = (p) => Array.from(p.node.querySelectorAll('.jp-InputArea-prompt'))
  .some(e => e.textContent.includes('*'));
"""

# Idle for real: the session has a kernel, its status is idle, the notebook has all its cells,
# and both indicators a reader sees (toolbar circle, status bar text) say Idle. The toolbar
# indicator reads idle even before a kernel exists, hence the status bar's "No Kernel" check.
_KERNEL_IDLE = _FIND_PANEL + """
({path, cells}) => {
  const p = findPanel(path);
  if (!p || !p.context.isReady || !p.sessionContext.isReady) return false;
  const sc = p.sessionContext;
  if (!sc.session || !sc.session.kernel || sc.kernelDisplayStatus !== 'idle') return false;
  if (p.content.model.cells.length !== cells) return false;
  const circles = Array.from(document.querySelectorAll('.jp-Notebook-ExecutionIndicator'));
  if (!circles.length || circles.some(e => e.getAttribute('data-status') !== 'idle')) return false;
  const bar = document.querySelectorAll('.jp-StatusBar-TextItem[title^="Change kernel"]');
  const text = Array.from(bar).map(e => e.textContent.trim()).join(' ');
  return /\\|\\s*Idle$/.test(text) && !/No Kernel/.test(text);
}
"""

# Run All has finished: no [*] prompt, no running cell, the kernel idle, and every non-empty code
# cell has an execution count -- or an error stopped the run (Run All stops at the first error).
_RUN_ALL_DONE = _FIND_PANEL + """
(path) => {
  const p = findPanel(path);
  if (!p || p.sessionContext.kernelDisplayStatus !== 'idle') return false;
  if (starPrompt(p)) return false;
  let pending = 0, error = false;
  for (const c of p.content.model.cells) {
    if (c.type !== 'code') continue;
    if (c.executionState === 'running') return false;
    for (let i = 0; i < c.outputs.length; i++) if (c.outputs.get(i).type === 'error') error = true;
    if (c.sharedModel.getSource().trim() && c.executionCount === null) pending++;
  }
  return pending === 0 || error;
}
"""

# Run All was picked up: a cell is queued or running, or has run.
_RUN_ALL_STARTED = _FIND_PANEL + """
(path) => {
  const p = findPanel(path);
  if (!p) return false;
  const code = Array.from(p.content.model.cells).filter(c => c.type === 'code');
  return !code.length || starPrompt(p)
    || code.some(c => c.executionCount !== null || c.executionState === 'running');
}
"""

# Everything a reader would see as a failure, from the models and from the page.
_PROBLEMS = _FIND_PANEL + """
({path, words, only, widgets}) => {
  const found = [];
  const p = findPanel(path);
  if (!p) return ['the notebook is not open'];
  const cells = Array.from(p.content.model.cells);
  cells.forEach((c, index) => {
    if (c.type !== 'code' || (only && !only.includes(index))) return;
    for (let i = 0; i < c.outputs.length; i++) {
      const o = c.outputs.get(i).toJSON();
      if (o.output_type === 'error') found.push(`cell ${index}: ${o.ename}: ${o.evalue}`);
      else if (o.output_type === 'stream' && o.name === 'stderr') {
        const text = Array.isArray(o.text) ? o.text.join('') : String(o.text);
        if (words.some(w => text.includes(w)))
          found.push(`cell ${index} wrote to stderr: ${text.slice(0, 600)}`);
      }
    }
    if (c.sharedModel.getSource().trim() && c.executionCount === null)
      found.push(`cell ${index} did not run`);
  });
  // Outputs that are not in the cell models: Output widgets (the panel's error box), renderers.
  for (const e of document.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], ' +
      '[data-mime-type="application/vnd.jupyter.error"]')) {
    const text = e.textContent;
    const where = e.closest('.cc-panel') ? 'the panel' : 'an output';
    if (/Traceback|Error|Exception/.test(text)) found.push(`${where} shows: ${text.slice(0, 600)}`);
  }
  // A saved copy's widgets have no model until their cell runs again: only a live run's count.
  for (const e of document.querySelectorAll('.jp-OutputArea-output')) {
    if (/Error rendering/.test(e.textContent) ||
        (widgets && /Error displaying widget/.test(e.textContent)))
      found.push(`an output did not render: ${e.textContent.slice(0, 300)}`);
  }
  return Array.from(new Set(found));
}
"""

# Every picture among the outputs has loaded (a timeline, a table rendered as an image).
_BROKEN_IMAGES = _FIND_PANEL + """
(path) => {
  const p = findPanel(path);
  const images = Array.from(p.node.querySelectorAll('.jp-OutputArea-output img'));
  return {count: images.length,
          broken: images.filter(i => !(i.complete && i.naturalWidth > 0))
                        .map(i => (i.src || '').slice(0, 80))};
}
"""

# Run one cell, the way Shift+Enter would without moving on; resolves when it was sent.
_RUN_CELL = _FIND_PANEL + """
async ({path, index}) => {
  const p = findPanel(path);
  window.jupyterapp.shell.activateById(p.id);
  p.content.activeCellIndex = index;
  p.content.deselectAll();
  await window.jupyterapp.commands.execute('notebook:run-cell');
}
"""

# That cell has run: it has an execution count, nothing queued or running, the kernel idle.
_CELL_DONE = _FIND_PANEL + """
({path, index}) => {
  const p = findPanel(path);
  if (!p || p.sessionContext.kernelDisplayStatus !== 'idle' || starPrompt(p)) return false;
  const c = p.content.model.cells.get(index);
  return c.executionState !== 'running' && c.executionCount !== null;
}
"""

# A digest of the picture's pixels' source: src is a fresh blob: URL on every update, so compare
# the bytes too. FNV-1a, as crypto.subtle is only there in secure contexts.
_PLOT_STATE = """
async (sel) => {
  const img = document.querySelector(sel);
  if (!img) return null;
  let digest = '';
  if (img.src) {
    try {
      const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
      let h = 0x811c9dc5;
      for (let i = 0; i < bytes.length; i++) { h ^= bytes[i]; h = Math.imul(h, 0x01000193) >>> 0; }
      digest = `${bytes.length}:${h.toString(16)}`;
    } catch (err) { digest = 'unreadable: ' + err; }
  }
  return {src: img.src, digest, width: img.naturalWidth};
}
"""

PANEL = ".cc-panel"
PLOT = ".cc-panel :is(img.cc-plot, .cc-plot img)"
RUN_BUTTON = ".cc-panel :is(button.cc-run, .cc-run button)"
CONTROL = ".cc-panel .cc-control"
NEWS_TOAST = ".Toastify__toast"


class LabDriver:
    """A reader at a JupyterLab page: open, run all, check, move a control, re-run."""

    def __init__(self, page, lab: LabServer) -> None:
        self.page = page
        self.lab = lab
        self.path = ""

    def open(self, notebook: Path) -> None:
        """Open `notebook` (relative to the server root) in a fresh workspace and wait for idle."""
        rel = Path(notebook).resolve().relative_to(self.lab.root_dir).as_posix()
        self.path = rel
        self.lab.opened.add(Path(notebook).resolve())
        cells = len(json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"])
        cells = max(cells, 1)  # JupyterLab gives an empty notebook one empty cell
        workspace = "cc-" + re.sub(r"[^A-Za-z0-9-]", "-", Path(rel).stem)
        # ?reset: a clean layout, whatever a previous run left in the workspace
        self.page.goto(self.lab.url(f"/lab/workspaces/{workspace}/tree/{rel}"
                                    f"?reset&token={self.lab.token}"), timeout=OPEN_MS)
        self.page.wait_for_function("() => !!window.jupyterapp", timeout=OPEN_MS)
        self.wait_kernel_idle(cells, OPEN_MS)

    def wait_kernel_idle(self, cells: int, timeout: int) -> None:
        self.page.wait_for_function(_KERNEL_IDLE, arg={"path": self.path, "cells": cells},
                                    timeout=timeout, polling=100)

    def run_all(self, timeout: int = RUN_ALL_MS) -> float:
        """Run > Run All Cells from the menu bar; wait for the run to finish. Returns seconds."""
        page = self.page
        # Outputs and counts saved in the file would look like a finished run: clear them first.
        page.evaluate(_FIND_PANEL + """(path) => {
            const p = findPanel(path); window.jupyterapp.shell.activateById(p.id);
            return window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs'); }""",
                      self.path)
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^\s*Run\s*$")).click(
            timeout=ACTION_MS)
        label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^\s*Run All Cells\s*$"))
        page.locator(".lm-Menu .lm-Menu-item").filter(has=label).click(timeout=ACTION_MS)
        started = time.perf_counter()
        try:
            page.wait_for_function(_RUN_ALL_STARTED, arg=self.path, timeout=ACTION_MS, polling=50)
        except Exception as error:  # Playwright's TimeoutError: say what it means here
            raise AssertionError(f"Run All Cells did not start any cell of {self.path} within "
                                 f"{ACTION_MS // 1000} s (sent before the kernel was ready?)"
                                 ) from error
        page.wait_for_function(_RUN_ALL_DONE, arg=self.path, timeout=timeout, polling=100)
        return time.perf_counter() - started

    def problems(self, only: list[int] | None = None, widgets: bool = True) -> list[str]:
        """What a reader would see as a failure: in every code cell, or in the cells `only`.

        ``widgets=False`` for a saved copy, whose widgets cannot show before their cell runs.
        """
        return self.page.evaluate(_PROBLEMS, {"path": self.path, "words": list(STDERR_WORDS),
                                              "only": only, "widgets": widgets})

    def images(self) -> dict:
        """{"count": pictures among the outputs, "broken": those that did not load}, once every
        picture has finished loading (or `ACTION_MS` has passed: then the unloaded are broken)."""
        with contextlib.suppress(Exception):  # Playwright's TimeoutError: judged below
            self.page.wait_for_function(
                _FIND_PANEL + """(path) => Array.from(findPanel(path).node.querySelectorAll(
                    '.jp-OutputArea-output img')).every(i => i.complete)""",
                arg=self.path, timeout=ACTION_MS, polling=100)
        return self.page.evaluate(_BROKEN_IMAGES, self.path)

    def clear_outputs(self) -> None:
        """Clear every output and execution count, as Edit > Clear Outputs of All Cells."""
        self.page.evaluate(_FIND_PANEL + """(path) => {
            const p = findPanel(path); window.jupyterapp.shell.activateById(p.id);
            return window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs'); }""",
                           self.path)

    def run_cells(self, indices: list[int], timeout: int = RUN_ALL_MS) -> float:
        """Run the cells `indices` one after another, each to its end. Returns seconds."""
        started = time.perf_counter()
        for index in indices:
            self.page.evaluate(_RUN_CELL, {"path": self.path, "index": index})
            self.page.wait_for_function(_CELL_DONE, arg={"path": self.path, "index": index},
                                        timeout=timeout, polling=100)
        return time.perf_counter() - started

    def news_toasts(self) -> list[str]:
        return [t for t in self.page.locator(NEWS_TOAST).all_inner_texts() if "news" in t.lower()]

    def plot_state(self) -> dict | None:
        return self.page.evaluate(_PLOT_STATE, PLOT)

    def change_a_control(self) -> str:
        """Move the first control of the panel a reader can change; describe what was done.

        Dropdowns are picked first (one precise change), then sliders (keyboard on the
        handle: the panel's sliders send on release, which a key press is).
        """
        page = self.page
        controls = page.locator(CONTROL)
        controls.first.wait_for(state="attached", timeout=ACTION_MS)
        selects = page.locator(f"{CONTROL} select")
        if selects.count():
            select = selects.first
            select.scroll_into_view_if_needed(timeout=ACTION_MS)
            options = select.evaluate(
                "s => Array.from(s.options).map(o => ({value: o.value, label: o.label}))")
            if len(options) < 2:
                raise AssertionError("the panel's first dropdown has fewer than two options")
            current = select.input_value()
            values = [o["value"] for o in options]
            index = values.index(current) if current in values else 0
            target = options[index + 1] if index + 1 < len(options) else options[index - 1]
            select.select_option(value=target["value"], timeout=ACTION_MS)
            return f"dropdown set from {options[index]['label']!r} to {target['label']!r}"
        handles = page.locator(f"{CONTROL} .noUi-handle")
        if handles.count():
            handle = handles.first
            handle.scroll_into_view_if_needed(timeout=ACTION_MS)
            before = handle.get_attribute("aria-valuenow") or "0"
            now = float(before)
            top = float(handle.get_attribute("aria-valuemax") or now)
            key = "ArrowRight" if now < top else "ArrowLeft"
            handle.focus()
            handle.press(key)
            page.wait_for_function(
                "([el, before]) => el.getAttribute('aria-valuenow') !== before",
                arg=[handle.element_handle(), before], timeout=ACTION_MS)
            return f"slider moved with {key} from {now:g}"
        raise AssertionError("the panel has no dropdown or slider among its .cc-control widgets")

    def rerun_panel(self) -> tuple[str, dict, dict]:
        """Change a control, press Run, wait for a new picture. Returns (what, before, after)."""
        page = self.page
        page.locator(PLOT).first.wait_for(state="attached", timeout=ACTION_MS)
        before = self.plot_state()
        what = self.change_a_control()
        button = page.locator(RUN_BUTTON).first
        page.wait_for_function("(sel) => { const b = document.querySelector(sel); "
                               "return b && !b.disabled; }", arg=RUN_BUTTON, timeout=PANEL_RUN_MS)
        button.click(timeout=ACTION_MS)
        # a new picture, shown, and the button enabled again (the panel disables it while running)
        page.wait_for_function(
            """([sel, run, old]) => { const img = document.querySelector(sel);
                const b = document.querySelector(run);
                return img && img.src && img.src !== old && img.complete && img.naturalWidth > 0
                       && b && !b.disabled; }""",
            arg=[PLOT, RUN_BUTTON, before["src"] if before else ""], timeout=PANEL_RUN_MS,
            polling=100)
        after = self.plot_state()
        return what, before, after

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        with contextlib.suppress(Exception):
            self.page.locator(PANEL).first.scroll_into_view_if_needed(timeout=2000)
        self.page.screenshot(path=str(path), timeout=ACTION_MS)
        return path
