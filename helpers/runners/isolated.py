"""Run a function in a fresh, monkey-patched Python, and get its value and timeline back.

``gevent.monkey.patch_all()`` must run before anything else imports ``socket``, ``threading`` or
``time.sleep``, and it must never run inside the notebook's kernel (ipykernel 7 stops answering).
So a demo that needs patching runs in a child process that patches first, and reports back as data::

    notebook kernel (never patched)              child: python -m helpers.runners._isolated_child
    -------------------------------              ------------------------------------------------
    run = run_patched(crawl, urls, timeout=20) ─►  monkey.patch_all()      # first statement
          (pickles the call into a temp file)      fn = helpers.<module>.<name>
                                                   with GreenletRecorder(): value = fn(*args)
    run.values[0], run.trace   ◄── result pickle ─ (value, recording) or the traceback text
    run.details["output"]      ◄── output file ─── whatever the child printed (bounded, never raw)

    child = start_patched(serve, port=0)  ────────►  fn(...) runs, calls report_ready({"port": p})
    child.ready  ◄── ready pickle ───────────────    ... serves while the kernel does other work
    run = child.stop()  ── stop file ────────────►  wait_for_stop() returns; fn returns its stats

>>> from helpers.chapters.ch05_coroutines import patch_report
>>> run = run_patched(patch_report, timeout=30)       # doctest: +SKIP
>>> run.values[0]["time.sleep"], run.seconds           # doctest: +SKIP
(True, 0.41)

- `fn` must be a top-level function of a ``helpers`` module: the child imports it by name, so the
  child never imports the notebook (``__main__``) and never needs to unpickle code.
- Every call has a timeout. On timeout `PatchedTimeout` is raised after the child (and, on
  Linux/macOS, its whole process group) has been killed; on ``KeyboardInterrupt`` (the kernel's
  Interrupt button) the child is killed before the interrupt goes on. No child outlives the call;
  a started child is killed at the latest when its handle is collected or the kernel exits.
- If `fn` raises, `PatchedChildError` carries the child's own traceback text.
- The child's prints go to a file, of which the last `_OUTPUT_LIMIT` characters come back in
  ``run.details["output"]``: they never interleave with the notebook's output, nothing is lost
  on Windows, and a runaway print loop costs disk, not the kernel's memory.
- If `fn` returns a `TracedResult`, its recording (say, one span per request) is merged with the
  greenlet recording, and the value is its value.

``patch=False`` runs the same function in a fresh child without patching — the control experiment,
or a clean memory baseline.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.course import check_float, check_timeout
from helpers.timeline import Trace

from .cleanup import kill_process_group
from .run import Run

__all__ = ["IsolatedChild", "PatchedChildError", "PatchedTimeout", "idle_until_stopped",
           "report_ready", "run_patched", "start_patched", "wait_for_stop"]

# A child that has not finished in an hour is a bug, not a demo; the bound keeps a typo (3600 for
# 3.6) from holding a kernel forever.
MAX_TIMEOUT = 3600.0
# The wait polls in slices this long so a kernel interrupt (SIGINT, delivered to any thread) is
# acted on within a tenth of a second even while the main thread waits on the child.
_WAIT_SLICE = 0.1
# Output kept from a child: enough for any honest log; only this tail of the file is ever read.
_OUTPUT_LIMIT = 200_000
# After kill, the child is reaped within this long (kill cannot be ignored; this is a safety net).
_REAP_SECONDS = 5.0
# How often `wait_for_stop` looks for the stop request in the child: fast enough that a stop feels
# instant, slow enough to cost nothing (a patched sleep lets every other greenlet run meanwhile).
_STOP_POLL_SECONDS = 0.05
_CHILD_MODULE = "helpers.runners._isolated_child"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# In the child: where the parent asks for the stop, and where the child says it is ready.
_STOP_ENV, _READY_ENV = "CC_ISOLATED_STOP_FILE", "CC_ISOLATED_READY_FILE"


class PatchedChildError(RuntimeError):
    """The function raised in the child (or the child died): the child's traceback is the message.

    ``child_traceback`` holds the traceback text, ``output`` what the child printed.
    """

    def __init__(self, message: str, child_traceback: str = "", output: str = "") -> None:
        super().__init__(message)
        self.child_traceback = child_traceback
        self.output = output


class PatchedTimeout(TimeoutError):
    """The child ran past its timeout and was killed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


# -- the child's side of a started function -----------------------------------------------------
def report_ready(info: Any = None) -> None:
    """In a child of `start_patched`: tell the kernel the function is ready (say, its port).

    ``info`` (picklable) becomes ``child.ready`` in the kernel. Outside such a child, does nothing.
    """
    path = os.environ.get(_READY_ENV)
    if not path:
        return
    partial = path + ".partial"
    with open(partial, "wb") as ready_file:
        pickle.dump(info, ready_file, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, path)


def wait_for_stop(timeout: float | None = None) -> bool:
    """In a child of `start_patched`: wait until the kernel calls ``stop()``; True if it did.

    Waits with ``time.sleep``, which is cooperative once patched: the child's other greenlets
    (a server's connections) run meanwhile. Outside such a child, returns False after `timeout`.
    """
    if timeout is not None:
        timeout = check_timeout("timeout", timeout, 0.0)
    deadline = None if timeout is None else time.monotonic() + timeout
    path = os.environ.get(_STOP_ENV)
    while True:
        if path and os.path.exists(path):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        if not path and deadline is None:
            raise RuntimeError("wait_for_stop() without a timeout only works in a child of "
                               "start_patched (nothing would ever stop it here)")
        time.sleep(_STOP_POLL_SECONDS)


def idle_until_stopped() -> dict[str, Any]:
    """The smallest function for `start_patched`: ready at once, counts ticks until stopped.

    Its ready report says whether the child is patched; its value is how many ticks it counted.
    """
    import socket

    if not os.environ.get(_STOP_ENV):
        raise RuntimeError("idle_until_stopped() runs in a child of start_patched, which stops it; "
                           "called anywhere else, nothing would ever stop it")
    report_ready({"patched": "gevent" in type(socket.socket).__module__ or
                  socket.socket.__module__.startswith("gevent")})
    ticks = 0
    while not wait_for_stop(_STOP_POLL_SECONDS):
        ticks += 1
    return {"ticks": ticks}


# -- the kernel's side ----------------------------------------------------------------------------
def _qualified(fn: Callable[..., Any]) -> tuple[str, str]:
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {fn!r}")
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", "") or ""
    if module != "helpers" and not module.startswith("helpers."):
        raise ValueError(
            "fn must be a top-level function of a helpers module (the child imports it by name, "
            f"never the notebook), got {fn!r} from module {module!r}"
        )
    if "." in name or "<" in name:
        raise ValueError(f"fn must be a top-level function of its module, got {module}.{name}")
    imported = sys.modules.get(module)
    if imported is None or getattr(imported, name, None) is not fn:
        raise ValueError(f"fn must be importable as {module}.{name}, got {fn!r}")
    return module, name


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child and its process group, then reap it: nothing is left behind."""
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


class _Child:
    """One child process and its files; killed and cleaned up exactly once, whatever happens."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, *, patch: bool,
                 trace: bool, started: bool) -> None:
        self.module, self.name = _qualified(fn)
        self.what = f"{self.module}.{self.name}"
        self.patch = patch
        self.workdir = tempfile.mkdtemp(prefix="cc-isolated-")
        join = os.path.join
        self.call_path, self.result_path = join(self.workdir, "call"), join(self.workdir, "result")
        self.output_path, self.stop_path = join(self.workdir, "output"), join(self.workdir, "stop")
        self.ready_path = join(self.workdir, "ready")
        with open(self.call_path, "wb") as call_file:
            pickle.dump({"module": self.module, "name": self.name, "args": args, "kwargs": kwargs,
                         "trace": bool(trace), "result": self.result_path},
                        call_file, protocol=pickle.HIGHEST_PROTOCOL)
        env = dict(os.environ)
        # The child finds `helpers` even when it is not installed (a notebook run from notebooks/).
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"  # the output shown after a timeout is what was printed so far
        env.pop(_STOP_ENV, None)
        env.pop(_READY_ENV, None)
        if started:
            env[_STOP_ENV], env[_READY_ENV] = self.stop_path, self.ready_path
        kwargs_popen: dict[str, Any] = {}
        if os.name == "posix":
            kwargs_popen["start_new_session"] = True  # own process group: a kill reaches its kids
        else:  # pragma: no cover - Windows
            kwargs_popen["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        argv = [sys.executable, "-m", _CHILD_MODULE, "--patch" if patch else "--no-patch",
                self.call_path]
        with open(self.output_path, "wb") as output:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output,
                                         stderr=subprocess.STDOUT, env=env, **kwargs_popen)
        self.pid = self.proc.pid
        self._finalizer = weakref.finalize(self, _finish, self.proc, self.workdir)

    def output(self) -> str:
        """The last `_OUTPUT_LIMIT` characters the child printed (reads only that tail)."""
        try:
            with open(self.output_path, "rb") as output:
                output.seek(0, os.SEEK_END)
                size = output.tell()
                output.seek(max(0, size - 4 * _OUTPUT_LIMIT))  # utf-8: at most 4 bytes a char
                text = output.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return text if len(text) <= _OUTPUT_LIMIT else "…" + text[-_OUTPUT_LIMIT:]

    def wait(self, deadline: float, timeout: float) -> int:
        """Wait for the child to exit by `deadline`, in slices so an interrupt is acted on."""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    output = self.output()
                    self.close()
                    raise PatchedTimeout(
                        f"{self.what} did not finish within {timeout:g} s in the "
                        f"{'patched' if self.patch else 'unpatched'} child (pid {self.pid}); the "
                        f"child was killed", output)
                try:
                    return self.proc.wait(timeout=min(_WAIT_SLICE, remaining))
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:  # KeyboardInterrupt included: the child never outlives the wait
            self.close()
            raise

    def result(self, returncode: int, model: str) -> Run:
        output = self.output()
        try:
            with open(self.result_path, "rb") as result_file:
                report = pickle.load(result_file)
        except (OSError, EOFError, pickle.UnpicklingError):
            raise PatchedChildError(
                f"the child running {self.what} (pid {self.pid}) exited with code {returncode} "
                f"before reporting a result. Its output:\n{output[-4000:] or '(none)'}",
                output=output,
            ) from None
        finally:
            self.close()
        if not report["ok"]:
            raise PatchedChildError(f"{self.what} raised in the child (pid {self.pid}):\n"
                                    f"{report['traceback']}", report["traceback"], output)
        kind = "patched" if self.patch else "unpatched"
        return Run(model, f"{self.name} in a {kind} child", [report["value"]], {},
                   report["seconds"], Trace().extend(report["recording"]), workers=1,
                   details={"output": output, "pid": self.pid, "patched": self.patch})

    def close(self) -> None:
        """Kill (if still running), reap and delete the child's files; safe to call twice."""
        self._finalizer()


def _finish(proc: subprocess.Popen, workdir: str) -> None:
    _kill(proc)
    shutil.rmtree(workdir, ignore_errors=True)


def run_patched(
    fn: Callable[..., Any],
    *args: Any,
    timeout: float = 30.0,
    patch: bool = True,
    trace: bool = True,
    **kwargs: Any,
) -> Run:
    """Run ``fn(*args, **kwargs)`` in a child Python that patches first; return its `Run`.

    ``run.values[0]`` is what `fn` returned and ``run.seconds`` its own run time, measured in the
    child. ``timeout`` (seconds, 0.1–3600) bounds the whole child, start-up included.
    ``patch=False`` runs the child without patching. ``trace=True`` records every greenlet switch
    in the child (one lane per greenlet, the hub's event loop as its own lane) into ``run.trace``.
    Raises `PatchedTimeout` (child killed), `PatchedChildError` (child's traceback), `ValueError`.
    """
    timeout = check_float("timeout", timeout, 0.1, MAX_TIMEOUT)
    child = _Child(fn, args, kwargs, patch=bool(patch), trace=trace, started=False)
    try:
        returncode = child.wait(time.monotonic() + timeout, timeout)
        return child.result(returncode, "patched" if patch else "isolated")
    finally:
        child.close()


class IsolatedChild:
    """A function running in a patched child beside the kernel; see `start_patched`.

    Use it as a context manager (``with start_patched(...) as child:``) or call `stop` in a
    ``finally``: either way the child is stopped, and killed if it does not stop in time.
    """

    def __init__(self, child: _Child, ready: Any) -> None:
        self._child = child
        self.ready = ready  # what the function passed to report_ready (e.g. its port)
        self.pid = child.pid
        self.run: Run | None = None

    @property
    def alive(self) -> bool:
        return self._child.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> Run:
        """Ask the function to return (its `wait_for_stop()` returns True), wait for its `Run`.

        The child gets `timeout` seconds (0.1–3600) to return; then it is killed and
        `PatchedTimeout` raised. Calling `stop` again returns the same `Run`.
        """
        if self.run is not None:
            return self.run
        timeout = check_float("timeout", timeout, 0.1, MAX_TIMEOUT)
        child = self._child
        try:
            Path(child.stop_path).touch()
            returncode = child.wait(time.monotonic() + timeout, timeout)
            self.run = child.result(returncode, "patched" if child.patch else "isolated")
            return self.run
        finally:
            child.close()

    def kill(self) -> None:
        """Kill the child now (no result)."""
        self._child.close()

    def output(self) -> str:
        return self._child.output()

    def __enter__(self) -> IsolatedChild:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.stop()
        else:
            self.kill()


_STARTED: weakref.WeakSet[IsolatedChild] = weakref.WeakSet()


@atexit.register
def _kill_started() -> None:
    for handle in list(_STARTED):
        handle.kill()


def start_patched(
    fn: Callable[..., Any],
    *args: Any,
    ready_timeout: float = 30.0,
    patch: bool = True,
    trace: bool = False,
    **kwargs: Any,
) -> IsolatedChild:
    """Start ``fn(*args, **kwargs)`` in a child that patches first, and return while it runs.

    For what must run beside the kernel — a server that a load generator talks to. `fn` calls
    `report_ready(info)` once it is ready (``info``, say its port, becomes ``child.ready``) and
    `wait_for_stop()` to wait for `IsolatedChild.stop`, then returns its result. This call waits
    up to `ready_timeout` seconds for the ready report; a child that dies or raises first is
    reported with its traceback, and one that takes too long is killed (`PatchedTimeout`).
    """
    ready_timeout = check_float("ready_timeout", ready_timeout, 0.1, MAX_TIMEOUT)
    child = _Child(fn, args, kwargs, patch=bool(patch), trace=trace, started=True)
    deadline = time.monotonic() + ready_timeout
    try:
        while not os.path.exists(child.ready_path):
            if child.proc.poll() is not None:  # finished or died before it was ready
                run = child.result(child.proc.returncode, "patched")
                raise PatchedChildError(f"{child.what} returned before calling report_ready() "
                                        f"(value {run.values[0]!r})", output=run.details["output"])
            if time.monotonic() >= deadline:
                output = child.output()
                child.close()
                raise PatchedTimeout(f"{child.what} did not call report_ready() within "
                                     f"{ready_timeout:g} s (pid {child.pid}); the child was killed",
                                     output)
            time.sleep(_STOP_POLL_SECONDS)
        with open(child.ready_path, "rb") as ready_file:
            ready = pickle.load(ready_file)
    except BaseException:
        child.close()
        raise
    handle = IsolatedChild(child, ready)
    _STARTED.add(handle)
    return handle
