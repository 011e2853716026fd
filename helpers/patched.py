"""Run a function in a fresh, monkey-patched Python, and get its value and timeline back.

``gevent.monkey.patch_all()`` must run before anything else imports ``socket``, ``threading`` or
``time.sleep``, and it must never run inside the notebook's kernel (ipykernel 7 stops answering).
So a demo that needs patching runs in a child process that patches first, and reports back as data::

    notebook kernel (never patched)                 child: python -m helpers._patched_child
    -------------------------------                 ---------------------------------------
    run = run_patched(crawl, urls, timeout=20) ──►  monkey.patch_all()      # first statement
          (pickles the call into a temp file)       fn = helpers.<module>.<name>
                                                    with GreenletRecorder(): value = fn(*args)
    run.value, run.recording  ◄── result pickle ──  (value, recording) or the traceback text
    run.output                ◄── stdout+stderr ──  whatever the child printed (never shown raw)

>>> from helpers.patching import patch_report
>>> run = run_patched(patch_report, timeout=30)       # doctest: +SKIP
>>> run.value["time.sleep"], run.seconds               # doctest: +SKIP
(True, 0.41)

- `fn` must be a top-level function of a ``helpers`` module: the child imports it by name, so the
  child never imports the notebook (``__main__``) and never needs to unpickle code.
- Every call has a timeout. On timeout `PatchedTimeout` is raised after the child (and, on
  Linux/macOS, its whole process group) has been killed; on ``KeyboardInterrupt`` (the kernel's
  Interrupt button) the child is killed before the interrupt goes on. No child outlives the call.
- If `fn` raises, `PatchedChildError` carries the child's own traceback text.
- The child's prints are captured and returned in ``run.output``: they never interleave with the
  notebook's output, and nothing is lost on Windows.
- If `fn` returns a `TracedResult`, its recording (say, one span per request) is merged with the
  greenlet recording, and ``run.value`` is its value.

Chapters 06 (crawler) and 07 (socket server) call it the same way; ``patch=False`` runs the same
function in a fresh child without patching — the control experiment, or a clean memory baseline.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .course import check_float
from .timeline import Recording

__all__ = ["PatchedChildError", "PatchedRun", "PatchedTimeout", "run_patched"]

# A child that has not finished in an hour is a bug, not a demo; the bound keeps a typo (3600 for
# 3.6) from holding a kernel forever.
MAX_TIMEOUT = 3600.0
# The wait polls in slices this long so a kernel interrupt (SIGINT, delivered to any thread) is
# acted on within a tenth of a second even while the main thread waits on the child's pipe.
_WAIT_SLICE = 0.1
# Output kept from a child: enough for any honest log, bounded so a runaway print loop cannot fill
# the kernel's memory.
_OUTPUT_LIMIT = 200_000
# After kill, the child is reaped within this long (kill cannot be ignored; this is a safety net).
_REAP_SECONDS = 5.0
_CHILD_MODULE = "helpers._patched_child"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


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


@dataclass
class PatchedRun:
    """What `run_patched` returns. Unpacks as ``value, recording = run``."""

    value: Any
    recording: Recording = field(default_factory=Recording)
    seconds: float = 0.0  # the function's own run time, measured in the child
    output: str = ""  # what the child printed on stdout and stderr
    pid: int | None = None
    patched: bool = True

    def __iter__(self):
        return iter((self.value, self.recording))


def _qualified(fn: Callable[..., Any]) -> tuple[str, str]:
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


def _popen(argv: list[str]) -> subprocess.Popen:
    env = dict(os.environ)
    # The child finds `helpers` even when it is not installed (a notebook run from notebooks/).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"  # the output shown after a timeout is what was printed so far
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True  # own process group: a kill reaches its children too
    else:  # pragma: no cover - Windows
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env, **kwargs,
    )


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child and its process group, then reap it: nothing is left behind."""
    if proc.poll() is None:
        try:
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGKILL)
            else:  # pragma: no cover - Windows
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.communicate(timeout=_REAP_SECONDS)
    except (subprocess.TimeoutExpired, ValueError):
        proc.kill()
        proc.wait(timeout=_REAP_SECONDS)


def _decode(chunks: list[bytes]) -> str:
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return text if len(text) <= _OUTPUT_LIMIT else "…" + text[-_OUTPUT_LIMIT:]


def run_patched(
    fn: Callable[..., Any],
    *args: Any,
    timeout: float = 30.0,
    patch: bool = True,
    trace: bool = True,
    **kwargs: Any,
) -> PatchedRun:
    """Run ``fn(*args, **kwargs)`` in a child Python that patches first; return a `PatchedRun`.

    ``timeout`` (seconds, 0.1–3600) bounds the whole child, start-up included. ``patch=False`` runs
    the child without patching. ``trace=True`` records every greenlet switch in the child (one lane
    per greenlet, the hub as idle time) into ``run.recording``.
    Raises `PatchedTimeout` (child killed), `PatchedChildError` (child's traceback) or `ValueError`.
    """
    timeout = check_float("timeout", timeout, 0.1, MAX_TIMEOUT)
    module, name = _qualified(fn)
    workdir = tempfile.mkdtemp(prefix="cc-patched-")
    call_path, result_path = os.path.join(workdir, "call.pickle"), os.path.join(workdir, "result")
    try:
        with open(call_path, "wb") as call_file:
            pickle.dump(
                {"module": module, "name": name, "args": args, "kwargs": kwargs,
                 "trace": bool(trace), "result": result_path},
                call_file, protocol=pickle.HIGHEST_PROTOCOL,
            )
        argv = [sys.executable, "-m", _CHILD_MODULE, "--patch" if patch else "--no-patch",
                call_path]
        return _wait(_popen(argv), timeout, result_path, f"{module}.{name}", patch)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait(proc: subprocess.Popen, timeout: float, result_path: str, what: str,
          patch: bool) -> PatchedRun:
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(proc)
                raise PatchedTimeout(
                    f"{what} did not finish within {timeout:g} s in the patched child "
                    f"(pid {proc.pid}); the child was killed", _decode(chunks),
                )
            try:
                out, _ = proc.communicate(timeout=min(_WAIT_SLICE, remaining))
            except subprocess.TimeoutExpired as slice_over:
                if slice_over.output:  # communicate keeps what it read; nothing is lost
                    chunks[:] = [slice_over.output]
                continue
            chunks[:] = [out or b""]
            break
    except BaseException:  # KeyboardInterrupt included: the child never outlives the wait
        _kill(proc)
        raise
    output = _decode(chunks)
    return _result(proc.returncode, result_path, what, output, proc.pid, patch)


def _result(returncode: int, result_path: str, what: str, output: str, pid: int,
            patch: bool) -> PatchedRun:
    try:
        with open(result_path, "rb") as result_file:
            report = pickle.load(result_file)
    except (OSError, EOFError, pickle.UnpicklingError):
        raise PatchedChildError(
            f"the child running {what} (pid {pid}) exited with code {returncode} before reporting "
            f"a result. Its output:\n{output[-4000:] or '(none)'}",
            output=output,
        ) from None
    if report["ok"]:
        return PatchedRun(report["value"], report["recording"], report["seconds"], output, pid,
                          patch)
    raise PatchedChildError(
        f"{what} raised in the child (pid {pid}):\n{report['traceback']}",
        report["traceback"], output,
    )
