"""JupyterLab in headless Chromium: one server and one browser for the whole session.

    pytest ──start──▶ jupyter lab (127.0.0.1, free port, random token, isolated HOME/config/data,
      │                 │          root = notebooks/, CC_QUICK=1, news prompt and autosave off)
      │                 └─spawns──▶ one ipykernel per opened chapter (inherits CC_QUICK=1)
      └─Playwright──▶ Debian's /usr/bin/chromium ──http/ws──▶ the server

- `lab` (session): the server on the notebooks directory (`CC_BROWSER_NOTEBOOKS` overrides it).
  Ready when ``/api/status`` answers with the token; stopped with ``POST /api/shutdown`` (which
  also shuts the kernels down), then SIGTERM, then SIGKILL of its process group and of every
  descendant seen, because kernels run in sessions of their own and outlive a killed server.
- `chromium` (session): skips without Playwright or Chromium, or fails when ``CI=true``.
- `open_page` (function): a factory of fresh browser contexts and pages, each wrapped in a
  `LabDriver`; afterwards it closes them, shuts the kernels down and waits for their processes to
  exit. On failure it keeps a screenshot, the browser console and the server log in
  ``test-artifacts/browser/``. `start_lab` starts an extra server for self-tests.
- `_process_guard` (session): after the server and the browser are gone, fails the session if any
  process they started is still alive (the suite-wide `no_leftovers` fixture skips browser tests),
  found as descendants of pytest or by a mark in their environment (orphans too).
- Chapters come from `pytest_generate_tests`: every ``notebooks/NN_*.ipynb`` at collection time.

`LabDriver` is what a test does with a page, the way a reader would: open a chapter, wait for
a really idle kernel, Run > Run All Cells, wait for the last cell, collect errors, move a control
of the chapter's panel (CSS classes from CONTRIBUTING.md) and check the timeline is redrawn.
No step sleeps for a fixed time: each waits for a condition, with a timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path(os.environ.get("CC_CHROMIUM", "/usr/bin/chromium"))
# Flags for a root user on a machine without a GPU or internet: no sandbox (root), no GPU process,
# nothing that phones home (QUIC, component updates, sync, background fetches), no first-run UI.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}  # wide enough for the panel's 11-inch figure

# Timeouts, each a ceiling for a wait on a condition (the measured times are far below them).
SERVER_START_SECONDS = 60.0  # measured 2-4 s; a cold CI disk can be much slower
SERVER_STOP_SECONDS = 20.0  # /api/shutdown stops kernels first, ~1 s each
PROCESS_EXIT_SECONDS = 10.0  # a shut-down kernel or closed renderer exits in well under 1 s
OPEN_MS = 90_000  # page load + kernel start: measured 3-6 s
RUN_ALL_MS = int(float(os.environ.get("CC_BROWSER_RUN_ALL_SECONDS", "240")) * 1000)
PANEL_RUN_MS = 120_000  # one re-run of the chapter's demo with quick parameters
ACTION_MS = 15_000  # a click, a menu, a selector that is already there

# The chapters: the same set tests/notebooks/ executes headless, found at collection time.
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
# Words that make a stderr output a failure, as in tests/notebooks/test_notebooks.py.
STDERR_WORDS = ("Traceback", "Warning", "Error", "warning:")


def notebooks_dir() -> Path:
    """Where the chapters are: the repo's notebooks/, or $CC_BROWSER_NOTEBOOKS for development."""
    return Path(os.environ.get("CC_BROWSER_NOTEBOOKS") or ROOT / "notebooks").resolve()


def chapters() -> list[Path]:
    return sorted(notebooks_dir().glob(NOTEBOOK_GLOB))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _missing(what: str) -> None:
    """Skip on a developer's machine; fail in CI, where a skipped browser test proves nothing."""
    if _in_ci():
        pytest.fail(f"{what} (CI=true: the browser tests must run here)", pytrace=False)
    pytest.skip(what)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------
class ProcessGuard:
    """Remembers every process the browser tests started, to prove at the end that none is left.

    Two nets: the descendants of pytest seen along the way, and every process carrying this
    session's mark in its environment (the server, kernels, their workers, Chromium), which
    also finds orphans whose parent died and who were re-parented away from pytest.
    """

    MARK = "CC_BROWSER_SESSION"

    def __init__(self) -> None:
        self.baseline = {p.pid for p in psutil.Process().children(recursive=True)}
        self.seen: dict[int, psutil.Process] = {}
        self.mark = f"{os.getpid()}-{secrets.token_hex(6)}"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this environment) with the session's mark added."""
        return {**(os.environ if base is None else base), self.MARK: self.mark}

    def marked(self) -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter():
            if p.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if p.environ().get(self.MARK) == self.mark and _alive(p):
                    found.append(p)
        return found

    def track(self, *roots: psutil.Process | int | None) -> list[psutil.Process]:
        """Note `roots` and all their descendants now; returns the newly seen ones."""
        new = []
        for root in roots:
            if root is None:
                continue
            try:
                proc = root if isinstance(root, psutil.Process) else psutil.Process(root)
                family = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                continue
            for p in family:
                if p.pid not in self.seen:
                    self.seen[p.pid] = p
                    new.append(p)
        return new

    def track_own_children(self) -> None:
        """Note every descendant of pytest that was not there before the browser tests."""
        for p in psutil.Process().children(recursive=True):
            if p.pid not in self.baseline:
                self.track(p)

    def leftovers(self, timeout: float = PROCESS_EXIT_SECONDS) -> list[str]:
        """Wait for the tracked processes to exit; kill and describe the ones that do not."""
        self.track_own_children()
        self.track(*self.marked())
        alive = [p for p in self.seen.values() if _alive(p)]
        _, alive = psutil.wait_procs(alive, timeout=timeout)
        described = []
        for p in alive:
            with contextlib.suppress(psutil.Error):
                described.append(f"pid {p.pid}: {' '.join(p.cmdline())[:160]}")
                p.kill()
        return described


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float = PROCESS_EXIT_SECONDS) -> list[str]:
    """Wait for `procs` to exit; kill and describe the ones that do not."""
    _, alive = psutil.wait_procs([p for p in procs if _alive(p)], timeout=timeout)
    out = []
    for p in alive:
        with contextlib.suppress(psutil.Error):
            out.append(f"pid {p.pid}: {' '.join(p.cmdline())[:160]}")
            p.kill()
    return out


# --------------------------------------------------------------------------------------------
# The JupyterLab server
# --------------------------------------------------------------------------------------------
if sys.platform.startswith("linux"):
    import ctypes

    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
    _PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

    def _die_with_parent() -> None:
        """In the child before exec: get SIGKILL if pytest dies (a hard timeout, a kill -9), so
        the server cannot outlive it; its kernels see their parent gone and exit (ipykernel's
        parent poller). Nothing here imports or allocates much: it runs between fork and exec."""
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
else:
    _die_with_parent = None  # elsewhere the end-of-session check is the only net


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# User settings written into the isolated config dir before the server starts:
# - no "Would you like to get notified about official Jupyter news?" toast, no update check;
# - no autosave: Run All makes the notebook dirty, and an autosave would write outputs into the
#   repository's notebooks (they are committed stripped).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

# Variables that would point the isolated server at the developer's own Jupyter files.
_UNSET_ENV = ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTERLAB_SETTINGS_DIR",
              "JUPYTERLAB_WORKSPACES_DIR", "JUPYTER_PLATFORM_DIRS", "JUPYTER_TOKEN",
              "JUPYTER_PREFER_ENV_PATH")


class LabServer:
    """One `jupyter lab` on 127.0.0.1 with an isolated home; use as a context manager."""

    def __init__(self, root_dir: Path, base: Path, guard: ProcessGuard) -> None:
        self.root_dir = Path(root_dir).resolve()
        self.base = base
        self.guard = guard
        self.token = secrets.token_hex(24)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = base / "jupyterlab.log"
        self.start_seconds = 0.0
        self.opened: set[Path] = set()  # notebooks a page opened: none may be written to

    # -- paths and environment ----------------------------------------------------------------
    def _prepare(self) -> dict[str, str]:
        dirs = {name: self.base / name for name in
                ("home", "config", "data", "runtime", "ipython", "checkpoints")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for rel, values in LAB_SETTINGS.items():
            path = dirs["config"] / "lab" / "user-settings" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = self.guard.env({k: v for k, v in os.environ.items() if k not in _UNSET_ENV})
        env.update(
            HOME=str(dirs["home"]),
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            IPYTHONDIR=str(dirs["ipython"]),
            JUPYTER_TOKEN=self.token,  # in the environment, not on the command line `ps` shows
            CC_QUICK="1",  # kernels inherit the server's environment: small parameters
            PYTHONUNBUFFERED="1",
        )
        # matplotlib's font cache lives under HOME; reuse the developer's if there is one so a
        # fresh HOME does not rebuild it (seconds on a 2-core machine). Only a cache.
        if "MPLCONFIGDIR" not in env:
            cache = Path.home() / ".cache" / "matplotlib"
            if cache.is_dir() and os.access(cache, os.W_OK):
                env["MPLCONFIGDIR"] = str(cache)
        self._dirs = dirs
        return env

    def _command(self) -> list[str]:
        config = self._dirs["config"]
        return [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser", "--allow-root",  # CI runs as root
            "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--LabApp.user_settings_dir={config / 'lab' / 'user-settings'}",
            f"--LabApp.workspaces_dir={config / 'lab' / 'workspaces'}",
            # checkpoints go to the temporary dir, not into notebooks/.ipynb_checkpoints
            f"--FileCheckpoints.root_dir={self._dirs['checkpoints']}",
            # window.jupyterapp: the tests read kernel and cell state from the app's models
            "--LabApp.expose_app_in_browser=True",
        ]

    # -- lifecycle ----------------------------------------------------------------------------
    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, method: str, path: str, timeout: float = 10.0):
        req = urllib.request.Request(self.url(path), method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def start(self) -> LabServer:
        env = self._prepare()
        started = time.perf_counter()
        for _attempt in range(3):  # a free port can be taken between the check and the bind
            self.port = _free_port()
            log = self.log_path.open("ab")
            try:
                self.proc = subprocess.Popen(
                    self._command(), env=env, cwd=self.root_dir, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=_die_with_parent)
            finally:
                log.close()
            self.guard.track(self.proc.pid)
            if self._wait_ready(started + SERVER_START_SECONDS):
                self.start_seconds = time.perf_counter() - started
                return self
            if self.proc.poll() is None:  # still running but never answered: give up
                break
            if "already in use" not in self.log_tail():
                break
        self.stop()
        raise RuntimeError(f"JupyterLab did not become ready in {SERVER_START_SECONDS:.0f} s; "
                           f"its log:\n{self.log_tail()}")

    def _wait_ready(self, deadline: float) -> bool:
        while time.perf_counter() < deadline:
            try:
                status = self.api("GET", "/api/status", timeout=2.0)
                if isinstance(status, dict) and "started" in status:
                    return True
            except (OSError, urllib.error.URLError, ValueError):
                pass
            try:  # the pause between polls doubles as the check that the server is alive
                self.proc.wait(timeout=0.1)
                return False
            except subprocess.TimeoutExpired:
                pass
        return False

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kernel_processes(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []

    def shutdown_kernels(self) -> list[str]:
        """Shut every kernel down through the REST API; returns processes that did not exit."""
        procs = self.kernel_processes()
        self.guard.track(*procs)
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            for session in self.api("GET", "/api/sessions") or []:
                with contextlib.suppress(OSError, urllib.error.URLError):
                    self.api("DELETE", f"/api/sessions/{session['id']}")
            for kernel in self.api("GET", "/api/kernels") or []:
                with contextlib.suppress(OSError, urllib.error.URLError):
                    self.api("DELETE", f"/api/kernels/{kernel['id']}")
        return _wait_gone(procs)

    def stop(self) -> None:
        """Shut down cleanly; escalate to SIGTERM and SIGKILL. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        try:
            family = [psutil.Process(proc.pid), *self.kernel_processes()]
        except psutil.Error:
            family = self.kernel_processes()
        self.guard.track(*family)
        if proc.poll() is None:
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                self.api("POST", "/api/shutdown")
            try:
                proc.wait(timeout=SERVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=PROCESS_EXIT_SECONDS)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(OSError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=PROCESS_EXIT_SECONDS)
        # kernels live in sessions of their own: kill any the server did not take down
        _, alive = psutil.wait_procs([p for p in family if _alive(p)], timeout=2.0)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self.proc = None

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Driving a page
# --------------------------------------------------------------------------------------------
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
({path, words}) => {
  const found = [];
  const p = findPanel(path);
  if (!p) return ['the notebook is not open'];
  const cells = Array.from(p.content.model.cells);
  cells.forEach((c, index) => {
    if (c.type !== 'code') return;
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
  for (const e of document.querySelectorAll('.jp-OutputArea-output')) {
    if (/Error displaying widget|Error rendering/.test(e.textContent))
      found.push(`a widget did not render: ${e.textContent.slice(0, 300)}`);
  }
  return Array.from(new Set(found));
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

    def problems(self) -> list[str]:
        return self.page.evaluate(_PROBLEMS, {"path": self.path, "words": list(STDERR_WORDS)})

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


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------
_REPORTS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(request) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


def _digests(directory: Path) -> dict[Path, str]:
    """Path -> content digest of every notebook directly in `directory`."""
    return {p.resolve(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.glob("*.ipynb"))}


@pytest.fixture(scope="session")
def _process_guard() -> Iterator[ProcessGuard]:
    guard = ProcessGuard()
    yield guard
    left = guard.leftovers()
    if left:
        pytest.fail("browser tests left processes behind (now killed):\n  " + "\n  ".join(left),
                    pytrace=False)


@pytest.fixture(scope="session")
def chromium(_process_guard):
    """Debian's Chromium under Playwright, shared by the session (no `playwright install`)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright; the browser "
                 "itself comes from Debian: sudo apt-get install chromium)")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _missing(f"no Chromium at {CHROMIUM}: sudo apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             env=_process_guard.env(), timeout=60_000)
        _process_guard.track_own_children()
        try:
            yield browser
        finally:
            _process_guard.track_own_children()
            browser.close()


def _start_lab(root: Path, base: Path, guard: ProcessGuard) -> LabServer:
    base.mkdir(parents=True, exist_ok=True)
    return LabServer(root, base, guard).start()


@pytest.fixture(scope="session")
def lab(chromium, _process_guard, tmp_path_factory) -> Iterator[LabServer]:
    """The server on the chapters' directory (after `chromium`, so a skip starts nothing)."""
    root = notebooks_dir()
    before = _digests(root)
    had_checkpoints = (root / ".ipynb_checkpoints").exists()
    server = _start_lab(root, tmp_path_factory.mktemp("jupyterlab"), _process_guard)
    try:
        yield server
    finally:
        server.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copyfile(server.log_path, ARTIFACTS / "jupyterlab.log")
    # Autosave is off and checkpoints go to the temporary dir: an opened chapter must be as it
    # was (only opened ones are compared, so an editor saving another chapter meanwhile is fine).
    after = _digests(root)
    changed = sorted(p.name for p in server.opened if p in before and after.get(p) != before[p])
    if changed or (root / ".ipynb_checkpoints").exists() and not had_checkpoints:
        pytest.fail(f"the browser run wrote into {root}: changed {changed}; "
                    f"checkpoints there: {(root / '.ipynb_checkpoints').exists()}", pytrace=False)


@pytest.fixture(scope="session")
def start_lab(chromium, _process_guard, tmp_path_factory):
    """Start another server on a directory of its own (for self-tests); stopped by the caller."""
    def start(root: Path) -> LabServer:
        return _start_lab(root, tmp_path_factory.mktemp("jupyterlab-extra"), _process_guard)
    return start


@pytest.fixture
def open_page(chromium, _process_guard, request):
    """Factory: a fresh context and page on a server, as a LabDriver; cleaned up after the test.

    On failure: a screenshot, the browser console and the server log go to test-artifacts/.
    """
    opened: list[tuple[object, LabDriver, list[str]]] = []
    callspec = getattr(request.node, "callspec", None)  # a chapter's artifacts carry its name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", callspec.id if callspec else request.node.name)
    for stale in (f"{name}-FAILED.png", f"{name}-console.log", f"{name}-jupyterlab.log"):
        with contextlib.suppress(OSError):
            (ARTIFACTS / stale).unlink()

    def open_(lab: LabServer) -> LabDriver:
        context = chromium.new_context(viewport=VIEWPORT)
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
        page.on("crash", lambda _: console.append("[crash] the page crashed"))
        driver = LabDriver(page, lab)
        opened.append((context, driver, console))
        return driver

    yield open_
    failed = _failed(request)
    problems = []
    for context, driver, console in opened:
        if failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(Exception):
                driver.page.screenshot(path=str(ARTIFACTS / f"{name}-FAILED.png"), timeout=10_000)
            (ARTIFACTS / f"{name}-console.log").write_text("\n".join(console) + "\n")
            (ARTIFACTS / f"{name}-jupyterlab.log").write_text(driver.lab.log_tail(200_000))
        _process_guard.track_own_children()
        context.close()
        problems += driver.lab.shutdown_kernels()
    if problems:
        pytest.fail("processes of this test's kernels did not exit (now killed):\n  "
                    + "\n  ".join(problems), pytrace=False)


def pytest_generate_tests(metafunc):
    """`chapter`: every chapter notebook, globbed at collection time so new ones are covered."""
    if "chapter" in metafunc.fixturenames:
        found = chapters()
        metafunc.parametrize("chapter", found, ids=[p.stem for p in found])


def pytest_collection_modifyitems(session, config, items):
    """Browser tests last: their server and Chromium live until the session ends, and no other
    test should run beside them (the suite-wide leftover check would see Chromium's spare
    renderers come and go)."""
    browser = [item for item in items if item.get_closest_marker("browser")]
    if browser:
        others = [item for item in items if not item.get_closest_marker("browser")]
        items[:] = others + browser
