"""A few worker processes that share a lock (or another primitive), started together, each
shipping its timeline back once. Chapter 03's demos all run through `Workers`.

Data flow::

    the kernel                                       worker i (fork, spawn or forkserver)
    ----------                                       ------------------------------------
    with Workers(start_method) as w:
        lock = w.ctx.Lock()
        w.add(fn, lock, ...)     # queued, not started
        w.run(timeout)   # raises RuntimeError if a worker failed (keep_errors=True: it does not)
          launch(): Barrier(n), n x ctx.Process ──>  ignore SIGINT
                                                     rec = Recorder("worker i [pid …]")
                                                     barrier.wait()  # all begin at once
                                                     value = fn(rec, lock, ...)  # spans in rec
          join():  results.get(timeout)  <───────── (i, value, error, rec.recording()), once
                   a child that died without a word (killed) gets an error instead
        w.values, w.errors, w.trace, w.exitcodes
    __exit__: stop every process still alive, close the results queue, unlink the semaphores
              of the results queue, the barrier and every primitive passed to `add`

A worker function is a top-level function of a helpers module that takes the `Recorder` first;
it times what it does with ``rec.span(label, kind)`` and returns plain data. ``@checked(name=(low,
high), …)`` on it states the range of each number it takes: `Workers.add` checks the arguments
against its signature and those ranges in the kernel, before any process starts, and a direct
call checks them too.
"""

from __future__ import annotations

import functools
import inspect
import os
import queue as queue_module
import time
from collections.abc import Callable
from typing import Any

from helpers.course import (
    check_callable,
    check_float,
    check_int,
    check_start_method,
    check_timeout,
    mp_context,
    quiet_fork_warnings,
)
from helpers.runners.cleanup import close_queue, ignore_sigint, release_semaphores, stop_processes
from helpers.timeline import Recorder, Trace

__all__ = ["MAX_WORKERS", "WAIT_SECONDS", "Workers", "checked", "spin"]

# The most processes one demo may start: the demos need 2-4; a typo must not fork-bomb a laptop.
MAX_WORKERS = 16
# A lane name is a label on a plot: longer than this, it would push the timeline off the figure.
_MAX_LANE = 60
# How long any wait inside a worker may last before it gives up with TimeoutError. The demos'
# real waits are well under a second; on a loaded machine several times that. Longer means stuck.
WAIT_SECONDS = 20.0
# A whole demo (start, work, report) normally takes 1-3 s; the kernel gives up after this.
DEFAULT_TIMEOUT_SECONDS = 60.0
# No demo worker computes longer than this in one go; more is a typo (seconds for ms).
_MAX_SPIN_SECONDS = 60.0
# How often a waiting kernel looks for a worker that died without reporting (killed, os._exit).
_POLL_SECONDS = 0.05


def spin(seconds: float) -> None:
    """Compute (keep a core busy) for `seconds` of wall time: the "work" of a demo worker."""
    end = time.perf_counter() + check_float("seconds", seconds, 0.0, _MAX_SPIN_SECONDS)
    while time.perf_counter() < end:
        pass


def checked(**ranges: tuple[float, float]):
    """Decorate a worker function with the range of each of its numeric parameters: an int
    range ``(1, 100)`` for a count, a float range ``(0.0, 10.0)`` for seconds. The function is
    then checked on every call, and by `Workers.add` before anything starts."""
    for name, bounds in ranges.items():
        if not (isinstance(bounds, tuple) and len(bounds) == 2):
            raise TypeError(f"the range of {name} must be a (low, high) pair, got {bounds!r}")

    def decorate(fn):
        signature = inspect.signature(fn)
        unknown = set(ranges) - set(signature.parameters)
        if unknown:
            raise TypeError(f"{fn.__name__} has no parameter {', '.join(sorted(unknown))}")

        def check(args: tuple, kwargs: dict) -> None:
            bound = signature.bind(*args, **kwargs)  # TypeError: missing or extra arguments
            for name, (low, high) in ranges.items():
                if name in bound.arguments:
                    value = bound.arguments[name]
                    if isinstance(low, int) and isinstance(high, int):
                        check_int(name, value, low, high)
                    else:
                        check_float(name, value, low, high)

        @functools.wraps(fn)
        def worker(*args, **kwargs):
            check(args, kwargs)
            return fn(*args, **kwargs)

        worker.check_arguments = check
        return worker

    return decorate


def _child(results, barrier, index: int, lane: str, fn: Callable[..., Any], args: tuple) -> None:
    """The target of every worker process: wait for the others, run, report exactly once."""
    ignore_sigint()  # the kernel's interrupt is for the kernel; it stops us
    rec = Recorder(f"{lane} [pid {os.getpid()}]", cpus=False)
    value, error = None, None
    try:
        barrier.wait(WAIT_SECONDS)
        value = fn(rec, *args)
    except Exception as exc:  # reported as data: a child never prints a traceback
        error = f"{type(exc).__name__}: {exc}"
    results.put((index, value, error, rec.recording()))


class Workers:
    """Start worker processes together, collect their values and timelines, leave nothing behind.

    Use it as a context manager: on the way out (normally, on an error, on a kernel interrupt)
    every worker still alive is terminated and every named semaphore unlinked.
    """

    def __init__(self, start_method: str | None = None, *, lane: str = "worker") -> None:
        self.start_method = check_start_method(start_method)
        self.ctx = mp_context(self.start_method)
        if not isinstance(lane, str):
            raise TypeError(f"lane must be a string (the name of each worker's lane), "
                            f"got {lane!r:.80}")
        if not lane.strip() or len(lane) > _MAX_LANE:
            raise ValueError(f"lane must be a non-empty name of at most {_MAX_LANE} characters, "
                             f"got {lane!r:.80}")
        self.lane = lane
        self.processes: list[Any] = []
        self.values: dict[int, Any] = {}
        self.errors: dict[int, str] = {}
        self.trace = Trace()
        self.warnings: list[str] = []
        self._tasks: list[tuple[Callable[..., Any], tuple]] = []
        self._owners: list[Any] = []
        self._results: Any = None
        self._barrier: Any = None

    # -- building ----------------------------------------------------------------------------
    def add(self, fn: Callable[..., Any], *args: Any) -> int:
        """Queue one worker process that will call ``fn(rec, *args)``; returns its index."""
        check_callable("fn", fn)
        if self.processes:
            raise ValueError("add() must come before launch(): these workers are running")
        check_int("number of workers", len(self._tasks) + 1, 1, MAX_WORKERS)
        check_arguments = getattr(fn, "check_arguments", None)
        if check_arguments is not None:  # a @checked worker: its ranges, here in the kernel
            check_arguments((None, *args), {})  # None stands for the Recorder it will get
        self._tasks.append((fn, args))
        self._owners.extend(_flatten(args))
        return len(self._tasks) - 1

    def lanes(self) -> list[str]:
        """Lane names in worker order (for `plot_timeline(..., lanes=...)`)."""
        return [f"{self.lane} {i + 1} [pid {p.pid}]" for i, p in enumerate(self.processes)]

    # -- running -----------------------------------------------------------------------------
    def launch(self) -> Workers:
        """Start every queued worker; they begin their work together (at a barrier)."""
        if not self._tasks:
            raise ValueError("number of workers must be at least 1: call add() first")
        if self.processes:
            raise ValueError("launch() was already called")
        self._results = self.ctx.Queue()
        self._barrier = self.ctx.Barrier(len(self._tasks))
        with quiet_fork_warnings(self.start_method) as caught:
            for index, (fn, args) in enumerate(self._tasks):
                process = self.ctx.Process(
                    target=_child,
                    args=(self._results, self._barrier, index, f"{self.lane} {index + 1}", fn,
                          args),
                    name=f"{self.lane}-{index + 1}",
                )
                self.processes.append(process)
                process.start()
        self.warnings.extend(caught)
        return self

    def join(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Workers:
        """Wait (at most `timeout` s) for every worker's report; raise TimeoutError if stuck."""
        check_timeout("timeout", timeout)
        deadline = time.perf_counter() + timeout
        pending = set(range(len(self.processes))) - set(self.values) - set(self.errors)
        while pending:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                names = ", ".join(f"{self.lane} {i + 1}" for i in sorted(pending))
                raise TimeoutError(f"{names} did not finish within {timeout:g} s")
            try:
                index, value, error, recording = self._results.get(
                    timeout=min(remaining, _POLL_SECONDS))
            except queue_module.Empty:
                self._notice_silent_deaths(pending)
                continue
            pending.discard(index)
            self.trace.extend(recording)
            if error is None:
                self.values[index] = value
            else:
                self.errors[index] = error
        for process in self.processes:
            process.join(max(0.0, deadline - time.perf_counter()))
        return self

    def run(self, timeout: float = DEFAULT_TIMEOUT_SECONDS, *,
            keep_errors: bool = False) -> Workers:
        """`launch`, then `join`; then, if a worker failed, raise RuntimeError saying which and
        why (its exception, as the worker reported it). With ``keep_errors=True`` the failures
        stay in `errors` for the caller to read, and nothing is raised."""
        check_timeout("timeout", timeout)
        if not isinstance(keep_errors, bool):
            raise TypeError(f"keep_errors must be True or False, got {keep_errors!r}")
        self.launch().join(timeout)
        if self.errors and not keep_errors:
            failed = "; ".join(f"{self.lane} {i + 1}: {error}"
                               for i, error in sorted(self.errors.items()))
            raise RuntimeError(f"a worker failed — {failed}")
        return self

    def _notice_silent_deaths(self, pending: set[int]) -> None:
        for index in sorted(pending):
            code = self.processes[index].exitcode
            if code is None:
                continue
            try:  # a report sent just before the exit may still be in the pipe
                late = self._results.get(timeout=_POLL_SECONDS)
            except queue_module.Empty:
                pending.discard(index)
                self.errors[index] = f"died without reporting (exit code {code})"
                # The others may still wait for it at the start: let them go (they report a
                # BrokenBarrierError) instead of waiting out their timeout.
                self._barrier.abort()
                continue
            late_index, value, error, recording = late
            pending.discard(late_index)
            self.trace.extend(recording)
            if error is None:
                self.values[late_index] = value
            else:
                self.errors[late_index] = error
            return

    @property
    def exitcodes(self) -> list[int | None]:
        return [p.exitcode for p in self.processes]

    def results(self) -> list[Any]:
        """Values in worker order (None for a worker that failed; see `errors`)."""
        return [self.values.get(i) for i in range(len(self._tasks))]

    # -- cleanup -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every worker still alive, close the results queue, unlink every semaphore."""
        stop_processes(self.processes)
        if self._results is not None:
            close_queue(self._results, drain=False)  # the kernel never puts: nothing to flush
        release_semaphores(self._results, self._barrier, *self._owners)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _flatten(values: Any, depth: int = 2) -> list[Any]:
    """The objects inside args (one level of lists, tuples and dicts), to find their semaphores."""
    found: list[Any] = []
    for value in values:
        if depth and isinstance(value, (list, tuple)):
            found.extend(_flatten(value, depth - 1))
        elif depth and isinstance(value, dict):
            found.extend(_flatten(list(value.values()), depth - 1))
        elif type(value).__module__.startswith("multiprocessing"):
            found.append(value)
    return found

