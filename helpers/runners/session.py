"""A Python child beside the kernel, in a session of its own: the one way the course runs one.

The isolated children of `isolated` (a patched function, a chapter 07 server) and chapter 06's
local site all start, wait and stop through `SessionChild`::

    kernel                                            child: python -m <module> <args>
    ------                                            --------------------------------
    child = SessionChild(prefix)       a folder of its own (made first, removed last), and a
                                       finalizer: from here on, whatever happens, the child's
                                       process group is killed and the folder removed
    child.start(module, args) ───────► its own session (a kill reaches what it starts), stdout and
                                       stderr to child.path("output"), `helpers` on its path
    child.wait_for_file(ready, t) ◄─── the child writes its ready file (whole, by rename)
    child.wait(t) / child.stop(t, sig) bounded: in slices (an interrupt is acted on at once),
                                       then the whole group is killed (`cleanup.kill_process_group`)
    child.output()                     the tail of what it printed, never more
    child.close()                      kill if still running, reap, remove the folder; twice is fine

An interrupt (``KeyboardInterrupt``) during any wait kills the child before it goes on; a handle
dropped without `close` is killed when collected, and at the latest when the kernel exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

from helpers.course import MAX_TIMEOUT_SECONDS, check_timeout

from .cleanup import kill_process_group

__all__ = ["OUTPUT_LIMIT", "SessionChild"]

# Waits poll in slices this long so a kernel interrupt (SIGINT, delivered to the main thread) is
# acted on within a tenth of a second even while the main thread waits on the child.
_WAIT_SLICE = 0.1
# How often a wait for the child's ready file looks: a start feels instant, and costs nothing.
_FILE_POLL_SECONDS = 0.02
# Output kept from a child: enough for any honest log; only this tail of the file is ever read.
OUTPUT_LIMIT = 200_000
# After a kill, the child is reaped within this long (kill cannot be ignored; a safety net).
_REAP_SECONDS = 5.0
# The folder that holds `helpers`: the child finds it even when it is not installed (a notebook
# run from notebooks/).
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _kill(procs: list[subprocess.Popen]) -> None:
    """Kill the child and its process group if it still runs, then reap it."""
    for proc in procs:
        if proc.poll() is None:
            if os.name == "posix":
                kill_process_group(proc.pid)  # its own session: the group id is its pid
            else:  # pragma: no cover - Windows
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    proc.kill()
        try:
            proc.wait(timeout=_REAP_SECONDS)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL always lands
            proc.kill()
            proc.wait(timeout=_REAP_SECONDS)


def _finish(procs: list[subprocess.Popen], workdir: str) -> None:
    _kill(procs)
    shutil.rmtree(workdir, ignore_errors=True)


class SessionChild:
    """One child process in a session of its own, and the folder of its files (see the module).

    ``prefix`` names the folder (``tempfile.mkdtemp(prefix=prefix)``): a child that outlives
    the kernel may recognise its own folder by it and remove it.
    """

    def __init__(self, prefix: str = "cc-child-") -> None:
        if not isinstance(prefix, str) or not prefix or os.sep in prefix:
            raise ValueError(f"prefix must be a non-empty folder name prefix, got {prefix!r}")
        self.workdir = tempfile.mkdtemp(prefix=prefix)
        self._procs: list[subprocess.Popen] = []  # the one child, once started
        # Registered before the child exists: a start that fails (EMFILE, say) leaves no folder.
        self._finalizer = weakref.finalize(self, _finish, self._procs, self.workdir)
        self.output_path = self.path("output")

    def path(self, name: str) -> str:
        """A file in the child's folder (removed with it)."""
        return os.path.join(self.workdir, name)

    def start(self, module: str, args: Sequence[str] = (), *,
              env: dict[str, str] | None = None) -> SessionChild:
        """Run ``python -m module *args`` in a new session; its output goes to `output_path`."""
        if self._procs:
            raise RuntimeError("this child was started already")
        env = dict(os.environ if env is None else env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH"))
                                            if p)
        env["PYTHONUNBUFFERED"] = "1"  # the output shown after a timeout is what was printed
        # Its temporary files in its own folder, removed with it: a child killed with its group
        # cannot remove multiprocessing's pymp-* folder (its fork server's socket) itself.
        scratch = self.path("tmp")
        os.makedirs(scratch, exist_ok=True)
        env["TMPDIR"] = scratch
        options: dict = {}
        if os.name == "posix":
            options["start_new_session"] = True  # its own process group: a kill reaches its kids
        else:  # pragma: no cover - Windows
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        with open(self.output_path, "wb") as output:
            self._procs.append(subprocess.Popen(
                [sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, env=env, **options))
        return self

    @property
    def proc(self) -> subprocess.Popen:
        if not self._procs:
            raise RuntimeError("the child has not been started")
        return self._procs[0]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return bool(self._procs) and self._procs[0].poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        """The last `OUTPUT_LIMIT` characters the child printed (reads only that tail)."""
        try:
            with open(self.output_path, "rb") as output:
                output.seek(0, os.SEEK_END)
                size = output.tell()
                output.seek(max(0, size - 4 * OUTPUT_LIMIT))  # utf-8: at most 4 bytes a char
                text = output.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]

    def wait_for_file(self, path: str, timeout: float) -> bool:
        """Wait up to `timeout` s for the child to write `path`: True once it exists; False if
        the child exited without it or the time ran out (`alive` tells which)."""
        timeout = check_timeout("timeout", timeout, 0.001, MAX_TIMEOUT_SECONDS)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if os.path.exists(path):
                    return True
                if not self.alive or time.monotonic() >= deadline:
                    return os.path.exists(path)  # it may have written it just before it exited
                time.sleep(_FILE_POLL_SECONDS)
        except BaseException:  # KeyboardInterrupt included: the child never outlives the wait
            self.close()
            raise

    def wait(self, timeout: float) -> int | None:
        """Wait up to `timeout` s for the child to exit: its exit code, or None if it still runs."""
        timeout = check_timeout("timeout", timeout, 0.001, MAX_TIMEOUT_SECONDS)
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self.proc.poll()
                try:
                    return self.proc.wait(timeout=min(_WAIT_SLICE, remaining))
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:  # KeyboardInterrupt included: the child never outlives the wait
            self.close()
            raise

    def stop(self, timeout: float, sig: int | None = None) -> int | None:
        """A bounded stop: send `sig` (say SIGTERM; None when the caller already asked another
        way), wait up to `timeout` s, then kill the whole group. The exit code if it stopped by
        itself, None if it had to be killed. The folder stays until `close`."""
        if self.alive and sig is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.Signals(sig))
        code = self.wait(timeout) if self.alive else self.returncode
        if code is None:
            _kill(self._procs)
        return code

    def close(self) -> None:
        """Kill (if still running) the child's group, reap it, remove its folder; safe twice."""
        self._finalizer()

    def __repr__(self) -> str:
        state = "not started" if not self._procs else (
            "running" if self.alive else f"exited {self.returncode}")
        return f"<SessionChild pid {self._procs[0].pid if self._procs else '-'} {state}>"
