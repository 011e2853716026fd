"""Chapter 01's demos that need a fresh Python: scripts, the fork server's preload, orphans.

- `run_script`: run a script the notebook wrote (``%%writefile``) in a fresh interpreter, bounded
  in time, and hand back its exit code and output as data — the script form of the ``__main__``
  pitfall, and what 3.14's forkserver default means for globals.
- `compare_forkserver_preload`: what one forkserver process costs when its target's module is
  preloaded into the fork server (as this course does) and when it is not (as a program does
  unless it calls ``set_forkserver_preload``). Each figure is measured in a fresh child
  (`helpers.runners.run_patched` with ``patch=False``), so each gets a fork server of its own::

      kernel ──run_patched(forkserver_start_ms, preload)──> fresh Python
             ctx = get_context("forkserver"); [ctx.set_forkserver_preload(["__main__", module])]
             warm-up round (starts the server), then N × Process(target=cpu_task).start/join
             <── median ms per process ──

- `orphaned_daemon`: a parent (`parent_with_daemon`) starts a daemon child (`heartbeat`) and is
  killed with SIGKILL, so it never runs the exit handler that would terminate the daemon; the
  demo finds the daemon still running, then kills it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import IO

from helpers.course import (
    available_start_methods,
    check_choice,
    check_float,
    check_int,
    check_start_method,
    check_timeout,
    mp_context,
    quiet_fork_warnings,
)
from helpers.runners import (
    close_queue,
    kill_process_group,
    release_semaphores,
    run_patched,
    stop_processes,
)

from .lifecycle import check_file_path

__all__ = [
    "OrphanReport",
    "ScriptRun",
    "compare_forkserver_preload",
    "forkserver_start_ms",
    "heartbeat",
    "orphaned_daemon",
    "parent_with_daemon",
    "run_script",
]

# A script of this chapter runs in well under a second; 30 s means it is stuck (a Pool.map
# waiting forever for a worker that died importing the script).
_SCRIPT_TIMEOUT = 30.0
# Keep this much of each end of a script's output: its first error (a child's) is at the start,
# the parent's last words at the end.
_OUTPUT_END = 4000
# How often a running script's stderr is looked at for `stop_on`: a tenth of a second is quick
# to a reader and costs nothing.
_POLL_SECONDS = 0.1
# What the preload comparison's children import in the fork server, when preloading.
_PRELOAD = ["helpers.workloads"]
# The orphan demo's daemon ends by itself after at most this long, even if nothing kills it.
_MAX_DAEMON_SECONDS = 60.0
# Samples per figure: each is one process; 40 keeps the cell short even on a slow machine.
_MAX_SAMPLES = 40
# A traceback's last line: an exception's (dotted) name, a colon, its message (maybe empty).
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Pool|Interrupt)):(.*)$")


@dataclass
class ScriptRun:
    """A script run in a fresh interpreter: how it ended and what it wrote."""

    path: str
    returncode: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    seconds: float

    def last_error(self) -> str:
        """The last line of the traceback on stderr, if any."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def errors(self) -> list[str]:
        """Each distinct exception on stderr (``Name: message``), in the order first raised.

        A message that starts on the next line (as multiprocessing's bootstrapping RuntimeError
        does) is joined to its name, so a child's own error shows, not only the parent's last one.
        """
        lines = self.stderr.splitlines()
        found: list[str] = []
        for i, line in enumerate(lines):
            match = _EXCEPTION_LINE.match(line)
            if not match:
                continue
            message = match.group(2).strip()
            if not message:  # the message's first paragraph, on the lines that follow
                rest = [line.strip() for line in lines[i + 1:]]
                while rest and not rest[0]:
                    rest.pop(0)
                message = " ".join(rest[:rest.index("")] if "" in rest else rest)
            text = f"{match.group(1)}: {message}" if message else match.group(1)
            if text not in found:
                found.append(text)
        return found

    def __str__(self) -> str:
        ended = ("killed after the timeout" if self.returncode is None
                 else f"exit code {self.returncode}")
        text = f"{Path(self.path).name}: {ended} after {self.seconds:.2f} s\n{self.stdout.rstrip()}"
        errors = self.errors() or ([self.last_error()] if self.last_error() else [])
        if errors:
            text += "\n  on stderr: " + "\n             ".join(errors)
        return text


def _checked_script(path, args, timeout, stop_on) -> tuple[Path, float]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be the path of a .py file, got {path!r:.80}")
    path = Path(path)
    if not path.is_file() or path.suffix != ".py":
        raise ValueError(f"path must be an existing .py file, got {str(path)!r}")
    if not all(isinstance(a, str) for a in args):
        raise TypeError(f"args must be strings, got {args!r}")
    timeout = check_timeout("timeout", timeout, 0.1, 600.0)
    if stop_on is not None and (not isinstance(stop_on, str) or not stop_on):
        raise ValueError(f"stop_on must be None or a non-empty string, got {stop_on!r:.80}")
    return path, timeout


def run_script(path: str | os.PathLike, *args: str, timeout: float = _SCRIPT_TIMEOUT,
               stop_on: str | None = None) -> ScriptRun:
    """Run ``python path *args`` in a fresh interpreter, in its own process group, bounded.

    On timeout the whole group (the script and its workers) is killed and ``returncode`` is None;
    likewise as soon as `stop_on` shows on stderr (a `Pool` whose workers die at start-up
    replaces them for ever, and its first error already says all there is to know).
    """
    path, timeout = _checked_script(path, args, timeout, stop_on)
    started = time.perf_counter()
    # Files opened for appending (O_APPEND), not pipes: readable while the script runs, never
    # full, and each write(2) by any of the script's processes lands whole at the end.
    # The script's own TMPDIR, removed with it: a script killed mid-run (a timeout, a pool whose
    # workers die at start-up) cannot remove multiprocessing's pymp-* folder itself.
    with tempfile.TemporaryFile("a+") as out, tempfile.TemporaryFile("a+") as err, \
            tempfile.TemporaryDirectory(prefix="cc-script-") as scratch:
        child = subprocess.Popen([sys.executable, str(path), *args], cwd=path.parent,
                                 stdout=out, stderr=err, text=True, start_new_session=True,
                                 env={**os.environ, "TMPDIR": scratch})
        code: int | None = None
        try:
            deadline = started + timeout
            while code is None and time.perf_counter() < deadline:
                try:
                    left = max(0.0, deadline - time.perf_counter())
                    code = child.wait(timeout=min(_POLL_SECONDS, left))
                except subprocess.TimeoutExpired:
                    if stop_on and _shows(err, stop_on):
                        break
        finally:
            if code is None:  # timed out, stopped early, or interrupted: the whole group goes
                kill_process_group(child.pid)  # its own session: the group id is its pid
                child.wait(timeout=5)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return ScriptRun(str(path), code, _ends(stdout), _ends(stderr), time.perf_counter() - started)


def _ends(text: str) -> str:
    """`text`, or its first and last `_OUTPUT_END` characters when it is longer than both."""
    if len(text) <= 2 * _OUTPUT_END:
        return text
    return f"{text[:_OUTPUT_END]}\n[… {len(text) - 2 * _OUTPUT_END} characters …]\n" \
           f"{text[-_OUTPUT_END:]}"


def _shows(stream: IO[str], text: str) -> bool:
    """Whether the file the child writes to holds `text` yet (read from the start each time)."""
    stream.seek(0)
    return text in stream.read()


# -- the fork server's preload -------------------------------------------------------------------
def forkserver_start_ms(preload: bool, samples: int = 10) -> float:
    """In a fresh Python: median ms to start and join a forkserver Process running `cpu_task`.

    With `preload`, the fork server imports ``helpers.workloads`` once, before it forks; without,
    every child imports it itself. Runs through ``run_patched(..., patch=False)``.
    """
    import multiprocessing

    from helpers.workloads import cpu_task

    check_choice("preload", preload, (True, False))
    check_int("samples", samples, 1, _MAX_SAMPLES)
    ctx = multiprocessing.get_context("forkserver")
    if preload:  # the list REPLACES the default ["__main__"]: name it again to keep it
        ctx.set_forkserver_preload(["__main__", *_PRELOAD])
    times = []
    for round_number in range(samples + 1):
        process = ctx.Process(target=cpu_task, args=(1,))
        started = time.perf_counter()
        process.start()
        process.join(30)  # a bounded wait, as everywhere
        if round_number:  # round 0 starts the fork server: a one-off cost
            times.append((time.perf_counter() - started) * 1e3)
        stop_processes([process])
    return median(times)


def compare_forkserver_preload(samples: int = 10, *, timeout: float = 60.0) -> dict[str, float]:
    """``{"preloaded": ms, "not preloaded": ms}`` per forkserver process, each in a fresh Python."""
    check_int("samples", samples, 1, _MAX_SAMPLES)
    check_timeout("timeout", timeout)
    if "forkserver" not in available_start_methods():
        raise RuntimeError("this OS has no forkserver start method")
    return {label: run_patched(forkserver_start_ms, preload, samples, patch=False, trace=False,
                               timeout=timeout).value
            for label, preload in (("preloaded", True), ("not preloaded", False))}


# -- a daemon outlives a parent killed with SIGKILL ---------------------------------------------
@dataclass(frozen=True)
class OrphanReport:
    parent_pid: int
    daemon_pid: int
    parent_exitcode: int | None
    daemon_alive_after_parent_killed: bool
    daemon_alive_after_cleanup: bool

    def __str__(self) -> str:
        return (f"parent {self.parent_pid} killed (exit code {self.parent_exitcode}); its daemon "
                f"child {self.daemon_pid} still running afterwards: "
                f"{self.daemon_alive_after_parent_killed}; after the demo killed it: "
                f"{self.daemon_alive_after_cleanup}")


def heartbeat(path: str, seconds: float) -> None:
    """The daemon: write its pid and the time into `path` every 50 ms, for `seconds` at most."""
    path = check_file_path("path", path)
    check_float("seconds", seconds, 0.0, _MAX_DAEMON_SECONDS)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(path + ".partial", "w", encoding="utf-8") as beat:
            beat.write(f"{os.getpid()} {time.monotonic_ns()}")
        os.replace(path + ".partial", path)  # a reader never sees half a line
        time.sleep(0.05)


def parent_with_daemon(results, path: str, seconds: float) -> None:
    """The parent: start a daemon child that beats into `path`, report its pid, then wait."""
    import multiprocessing

    path = check_file_path("path", path)
    check_float("seconds", seconds, 0.0, _MAX_DAEMON_SECONDS)
    # This process is single-threaded, so fork is safe for its child where the OS has it.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    daemon = multiprocessing.get_context(method).Process(
        target=heartbeat, args=(path, seconds), daemon=True)
    daemon.start()
    results.put(daemon.pid)
    time.sleep(seconds)  # killed long before it wakes: no exit handler runs, the daemon stays


def _beats(path: str) -> tuple[int, int] | None:
    try:
        with open(path, encoding="utf-8") as beat:
            pid, ns = beat.read().split()
        return int(pid), int(ns)
    except (OSError, ValueError):
        return None


def _beating(path: str, within: float = 1.0) -> bool:
    """Whether the daemon's heartbeat moves on within `within` seconds."""
    first = _beats(path)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        time.sleep(0.06)
        now = _beats(path)
        if now is not None and (first is None or now[1] != first[1]):
            return True
    return False


def _kill(pid: int | None) -> None:
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def orphaned_daemon(start_method: str | None = None, *, daemon_seconds: float = 5.0,
                    timeout: float = 30.0) -> OrphanReport:
    """Start `parent_with_daemon`, kill it with SIGKILL, and watch whether its daemon beats on."""
    start_method = check_start_method(start_method)
    check_float("daemon_seconds", daemon_seconds, 0.5, _MAX_DAEMON_SECONDS)
    check_timeout("timeout", timeout)
    ctx = mp_context(start_method)
    results = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="cc-orphan-") as folder:
        path = os.path.join(folder, "heartbeat")
        parent = ctx.Process(target=parent_with_daemon, args=(results, path, daemon_seconds))
        daemon_pid = None
        try:
            with quiet_fork_warnings(start_method):
                parent.start()
            daemon_pid = results.get(timeout=timeout)
            os.kill(parent.pid, signal.SIGKILL)  # no code runs in the parent: no exit handler
            # Look before joining: the daemon inherited the parent's end of the pipe that
            # join() watches, so join() would wait for the daemon too.
            alive_after = _beating(path)
        finally:
            stop_processes([parent])
            _kill(daemon_pid)  # the demo's own cleanup: nothing is left behind
            parent.join(timeout)
            close_queue(results)
            release_semaphores(results)
        alive_later = _beating(path)
    return OrphanReport(parent.pid, daemon_pid, parent.exitcode, alive_after, alive_later)
