"""Servers beside the kernel, on the course's isolated children (`helpers.runners.isolated`).

A server must keep running while later cells (or a terminal's ``nc``) talk to it, so it starts
as the course's isolated child beside the kernel (`ServerHandle` *is* an `IsolatedChild`: the
same session, ready file, finalizer and bounded stop) and stops with ``.stop()``. Each server
here waits on a *file descriptor* for its stop — the one thing every model can wait on without
blocking its own loop (gevent's hub, asyncio's loop, a ``select``) — so the child turns the
course's stop request into a pipe::

    kernel                                  child (patched only for gevent: patch=True)
    ------                                  -------------------------------------------
    h = start(serve, "gevent", ...)  ─────► run_controlled(serve, ...)
                                              control = Control(lifetime)
                                              watcher thread: wait_for_stop() ─► write(pipe)
    h.info  ◄── report_ready(info) ───────    serve(control, ...) calls control.ready(port=...)
    ... load, nc, chat ...                    serves; its loop watches control.stop_fd (pipe)
    h.stop() ─── the stop request ────────►   the watcher writes; the server stops, reports
    h.value ◄── run.values[0] ────────────    its books (counts, spans, RSS)

The server also stops by itself at ``control.deadline`` (its lifetime): one a reader forgot goes
away. An error, a timeout or ``KeyboardInterrupt`` kills the child's whole process group,
pre-fork workers and forked handlers included. `call` is the one-shot form.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from ...course import MAX_TIMEOUT_SECONDS, check_callable, check_float, check_timeout
from ...runners import (
    IsolatedChild,
    PatchedChildError,
    report_ready,
    run_patched,
    wait_for_stop,
)

__all__ = ["Control", "ServerHandle", "call", "check_control", "run_controlled", "start",
           "stop_all"]

# The servers started here and not yet stopped, for `stop_all`.
_LIVE: weakref.WeakSet[ServerHandle] = weakref.WeakSet()


class Control:
    """The child's side: announce readiness; ``stop_fd`` turns readable when asked to stop."""

    def __init__(self, lifetime: float, watch: bool) -> None:
        lifetime = check_timeout("lifetime", lifetime, 0.001, MAX_TIMEOUT_SECONDS)
        self.deadline = time.monotonic() + lifetime
        self.stop_fd, self._stop_w = os.pipe()
        if watch:
            threading.Thread(target=self._watch, name="stop watcher", daemon=True).start()

    def _watch(self) -> None:
        wait_for_stop(max(0.001, self.remaining()))
        os.write(self._stop_w, b"s")

    def ready(self, **info: Any) -> None:
        """Tell the kernel the server is listening (``info`` becomes ``handle.info``)."""
        report_ready(info)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def wait_stop(self) -> None:
        """Block (plain ``select``) until asked to stop or the lifetime ends."""
        import select

        select.select([self.stop_fd], [], [], self.remaining())


def check_control(control: object) -> Control:
    """Return `control` if it is a server child's `Control`, else raise TypeError naming it.

    A server body checks it before it binds: a wrong object found only after ``listen()`` would
    leave the listening socket open behind the error.
    """
    if not isinstance(control, Control):
        raise TypeError(f"control must be the Control a server child is given (handle.start "
                        f"makes it), got {control!r:.80}")
    return control


def run_controlled(module: str, name: str, lifetime: float, watch: bool, args: tuple,
                   kwargs: dict) -> Any:
    """In the child: call ``module.name(control, *args, **kwargs)`` with a fresh `Control`."""
    lifetime = check_timeout("lifetime", lifetime, 0.001, MAX_TIMEOUT_SECONDS)
    fn = getattr(importlib.import_module(module), name)
    return fn(Control(lifetime, watch), *args, **kwargs)


def _named(fn: Callable[..., Any]) -> tuple[str, str]:
    check_callable("fn", fn)
    module, name = getattr(fn, "__module__", "") or "", getattr(fn, "__qualname__", "") or ""
    if not module.startswith("helpers.") or "." in name or "<" in name:
        raise ValueError(f"fn must be a top-level function of a helpers module, got {fn!r}")
    return module, name


class ServerHandle(IsolatedChild):
    """A server running in a child; ``info`` is what it announced, `stop()` returns its value.

    The child's life is `IsolatedChild`'s (``with`` stops it, an error kills its group); what a
    server adds is its name, its announcement and a `stop` that answers with the server's value.
    """

    what = ""  # the server function, "module.name" (set by `start`)

    @property
    def info(self) -> dict[str, Any]:
        return self.ready or {}

    @property
    def value(self) -> Any:
        """What the server returned (its books), once stopped; None before."""
        return None if self.run is None else self.run.values[0]

    @property
    def running(self) -> bool:
        return self.alive

    def stop(self, timeout: float = 10.0) -> Any:
        """Ask the server to stop; wait up to `timeout` s for its value (then it is killed).

        Once killed, a server has no value: `stop` then returns None."""
        _LIVE.discard(self)
        return None if self.killed else super().stop(timeout).values[0]

    def kill(self) -> None:
        """Kill the server's whole process group now (no value). Safe to call twice."""
        _LIVE.discard(self)
        super().kill()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ServerHandle {self.what} pid {self.pid} {state} {self.info}>"


def start(fn: Callable[..., Any], *args: Any, patch: bool = False, lifetime: float = 600.0,
          ready_timeout: float = 30.0, **kwargs: Any) -> ServerHandle:
    """Start ``fn(control, *args, **kwargs)`` in a child; return once it called ``ready``.

    ``patch=True`` runs ``gevent.monkey.patch_all()`` in the child before anything else.
    ``lifetime`` (s, up to an hour) bounds how long the server runs if nobody stops it.
    """
    lifetime = check_float("lifetime", lifetime, 0.1, MAX_TIMEOUT_SECONDS)
    ready_timeout = check_timeout("ready_timeout", ready_timeout, 0.1, MAX_TIMEOUT_SECONDS)
    module, name = _named(fn)
    try:
        handle = ServerHandle.start(run_controlled, module, name, lifetime, True, args, kwargs,
                                    patch=patch, ready_timeout=ready_timeout)
    except PatchedChildError as error:
        raise _plain(error) from None
    handle.what = f"{module}.{name}"
    _LIVE.add(handle)
    return handle


def call(fn: Callable[..., Any], *args: Any, timeout: float = 60.0, **kwargs: Any) -> Any:
    """Run ``fn(control, *args, **kwargs)`` in an unpatched child to the end; return its value."""
    timeout = check_float("timeout", timeout, 0.1, MAX_TIMEOUT_SECONDS)
    module, name = _named(fn)
    try:
        return run_patched(run_controlled, module, name, timeout, False, args, kwargs,
                           patch=False, trace=False, timeout=timeout).values[0]
    except PatchedChildError as error:
        raise _plain(error) from None


# The last line of a child's traceback, when it is an error a reader should see as itself.
_OS_ERROR = re.compile(r"^(?:\w+\.)*OSError: \[Errno (\d+)\] (.*)$")
_VALUE_ERROR = re.compile(r"^ValueError: (.*)$")


def _plain(error: PatchedChildError) -> Exception:
    """A busy port or a bad value in the child, raised in the kernel as itself, not a traceback."""
    lines = (error.child_traceback or "").strip().splitlines()
    last = lines[-1] if lines else ""
    if match := _OS_ERROR.match(last):
        return OSError(int(match.group(1)), match.group(2))
    if match := _VALUE_ERROR.match(last):
        return ValueError(match.group(1))
    return error


def stop_all() -> int:
    """Kill every server this kernel started and has not stopped; return how many there were."""
    handles = list(_LIVE)
    for handle in handles:
        handle.kill()
    return len(handles)
