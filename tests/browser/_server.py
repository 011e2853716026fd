"""The isolated JupyterLab server: started on a free port of 127.0.0.1 with a random token and
a home, config and data dirs of its own; stopped with every kernel it started."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
from _processes import PROCESS_EXIT_SECONDS, ProcessGuard, is_alive, wait_gone

# Timeouts, each a ceiling for a wait on a condition (the measured times are far below them).
SERVER_START_SECONDS = 60.0  # measured 2-4 s; a cold CI disk can be much slower
SERVER_STOP_SECONDS = 20.0  # /api/shutdown stops kernels first, ~1 s each


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
#   repository's notebooks (they are committed stripped);
# - no windowing: every cell is rendered, so every output can be checked.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # Every cell in the page, not only those scrolled into view: the test reads every output
    # (JupyterLab 4 otherwise renders a long notebook's cells as they come into view).
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
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
            # kernels import this checkout's helpers, and write the reader's files under base
            PYTHONPATH=str(Path(__file__).resolve().parents[2]),
            CC_WORK=str(self.base / "work"),
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
        return wait_gone(procs)

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
        _, alive = psutil.wait_procs([p for p in family if is_alive(p)], timeout=2.0)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self.proc = None

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
