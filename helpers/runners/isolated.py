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
- The child's prints go to a file, of which the last `OUTPUT_LIMIT` characters come back in
  ``run.details["output"]``: they never interleave with the notebook's output, nothing is lost
  on Windows, and a runaway print loop costs disk, not the kernel's memory.
- If `fn` returns a `TracedResult`, its recording (say, one span per request) is merged with the
  greenlet recording, and the value is its value.

``patch=False`` runs the same function in a fresh child without patching — the control experiment,
or a clean memory baseline. The child itself (its session, folder, bounded waits and kill) is a
`helpers.runners.session.SessionChild`.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.course import MAX_TIMEOUT_SECONDS, check_float, check_timeout
from helpers.timeline import Trace

from .run import Run
from .session import SessionChild

__all__ = ["IsolatedChild", "PatchedChildError", "PatchedTimeout", "idle_until_stopped",
           "report_ready", "run_patched", "start_patched", "wait_for_stop"]

# How often `wait_for_stop` looks for the stop request in the child: fast enough that a stop feels
# instant, slow enough to cost nothing (a patched sleep lets every other greenlet run meanwhile).
_STOP_POLL_SECONDS = 0.05
_CHILD_MODULE = "helpers.runners._isolated_child"
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


class _Child(SessionChild):
    """One child running one call, and its files; killed and cleaned up exactly once."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, *, patch: bool,
                 trace: bool, started: bool) -> None:
        self.module, self.name = _qualified(fn)
        super().__init__(prefix="cc-isolated-")
        self.what = f"{self.module}.{self.name}"
        self.patch = patch
        self.call_path, self.result_path = self.path("call"), self.path("result")
        self.stop_path, self.ready_path = self.path("stop"), self.path("ready")
        try:
            with open(self.call_path, "wb") as call_file:
                pickle.dump({"module": self.module, "name": self.name, "args": args,
                             "kwargs": kwargs, "trace": bool(trace), "result": self.result_path},
                            call_file, protocol=pickle.HIGHEST_PROTOCOL)
            env = dict(os.environ)
            env.pop(_STOP_ENV, None)
            env.pop(_READY_ENV, None)
            if started:
                env[_STOP_ENV], env[_READY_ENV] = self.stop_path, self.ready_path
            self.start(_CHILD_MODULE, ["--patch" if patch else "--no-patch", self.call_path],
                       env=env)
        except BaseException:  # an unpicklable argument, or no process to be had: no folder left
            self.close()
            raise

    def wait_until(self, deadline: float, timeout: float) -> int:
        """Wait for the child to exit by `deadline`; past it, kill it and raise PatchedTimeout."""
        returncode = self.wait(max(0.001, deadline - time.monotonic()))
        if returncode is None:
            output = self.output()
            self.close()
            raise PatchedTimeout(
                f"{self.what} did not finish within {timeout:g} s in the "
                f"{'patched' if self.patch else 'unpatched'} child (pid {self.pid}); the "
                f"child was killed", output)
        return returncode

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
    timeout = check_float("timeout", timeout, 0.1, MAX_TIMEOUT_SECONDS)
    child = _Child(fn, args, kwargs, patch=bool(patch), trace=trace, started=False)
    try:
        returncode = child.wait_until(time.monotonic() + timeout, timeout)
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
        self.killed = False  # kill() was called: the child is gone, with no result

    @classmethod
    def start(cls, fn: Callable[..., Any], *args: Any, ready_timeout: float = 30.0,
              patch: bool = True, trace: bool = False, **kwargs: Any) -> IsolatedChild:
        """`start_patched`, returning a handle of this class (a subclass adds to the handle)."""
        ready_timeout = check_float("ready_timeout", ready_timeout, 0.1, MAX_TIMEOUT_SECONDS)
        child = _Child(fn, args, kwargs, patch=bool(patch), trace=trace, started=True)
        try:
            if not child.wait_for_file(child.ready_path, ready_timeout):
                if not child.alive:  # finished or died before it was ready
                    run = child.result(child.returncode, "patched")
                    raise PatchedChildError(f"{child.what} returned before calling report_ready()"
                                            f" (value {run.values[0]!r})",
                                            output=run.details["output"])
                output = child.output()
                raise PatchedTimeout(f"{child.what} did not call report_ready() within "
                                     f"{ready_timeout:g} s (pid {child.pid}); the child was "
                                     "killed", output)
            with open(child.ready_path, "rb") as ready_file:
                ready = pickle.load(ready_file)
        except BaseException:
            child.close()
            raise
        return cls(child, ready)

    @property
    def alive(self) -> bool:
        return self._child.alive

    def stop(self, timeout: float = 10.0) -> Run:
        """Ask the function to return (its `wait_for_stop()` returns True), wait for its `Run`.

        The child gets `timeout` seconds (0.1–3600) to return; then it is killed and
        `PatchedTimeout` raised. Calling `stop` again returns the same `Run`.
        """
        if self.run is not None:
            return self.run
        timeout = check_float("timeout", timeout, 0.1, MAX_TIMEOUT_SECONDS)
        if self.killed:
            raise RuntimeError(f"{self._child.what} was killed (pid {self.pid}): it has no result")
        child = self._child
        try:
            Path(child.stop_path).touch()
            returncode = child.wait_until(time.monotonic() + timeout, timeout)
            self.run = child.result(returncode, "patched" if child.patch else "isolated")
            return self.run
        finally:
            child.close()

    def kill(self) -> None:
        """Kill the child now (no result). Safe to call twice."""
        self.killed = True
        self._child.close()

    def output(self) -> str:
        return self._child.output()

    def __enter__(self) -> IsolatedChild:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.killed:
            self.stop()
        else:
            self.kill()


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
    return IsolatedChild.start(fn, *args, ready_timeout=ready_timeout, patch=patch, trace=trace,
                               **kwargs)

