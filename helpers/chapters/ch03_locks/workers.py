"""A few worker processes that share a lock (or another primitive), started together, each
shipping its timeline back once. Chapter 03's demos all run through `Workers`, a thin layer over
the course's process runner (`helpers.runners.ProcessGroup`), so a demo gets the same `Run` back
as every other runner: values in worker order, a `Failure` for each worker that raised or died.

Data flow::

    the kernel                                       worker i (fork, spawn or forkserver)
    ----------                                       ------------------------------------
    with Workers(start_method) as w:
        lock = w.ctx.Lock()
        w.add(fn, lock, ...)     # queued, not started
        w.run(timeout) -> Run   # raises RuntimeError if a worker failed (keep_failures=True:
                                # it does not)
          launch(): Barrier(n), n x ProcessGroup.start ──>  (the runner's child: ignores SIGINT)
                                                     _worker: rec = Recorder(...)
                                                              barrier.wait()  # all at once
                                                              value = fn(rec, lock, ...)
          join():  ProcessGroup.wait(timeout)  <──── TracedResult(value, rec.recording()), once,
                   a worker that died without a word       through its own pipe
                   is a "ProcessDied" Failure, and the barrier is aborted for the others
        w.results(), w.failures, w.trace, w.exitcodes, w.lanes()
    __exit__: stop every process still alive, close the pipes, unlink the semaphores of the
              barrier and of every primitive passed to `add`

A worker function is a top-level function of a helpers module that takes the `Recorder` first;
it times what it does with ``rec.span(label, kind)`` and returns plain data. ``@checked(name=(low,
high), …)`` on it states the range of each number it takes: `Workers.add` checks the arguments
against its signature and those ranges in the kernel, before any process starts, and a direct
call checks them too.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

from helpers.course import (
    check_callable,
    check_float,
    check_int,
    check_timeout,
)
from helpers.runners import Failure, ProcessGroup, Run, release_semaphores
from helpers.timeline import Recorder, Trace, TracedResult

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


def _worker(barrier, fn: Callable[..., Any], *args: Any) -> TracedResult:
    """What every worker process runs (inside the runner's child, which reports it): wait for the
    others, then ``fn(rec, *args)``; its value and its recording go back together."""
    rec = Recorder("worker", cpus=False)  # the runner files the spans under the worker's lane
    barrier.wait(WAIT_SECONDS)
    return TracedResult(fn(rec, *args), rec.recording())


class Workers:
    """Start worker processes together, collect their values and timelines, leave nothing behind.

    Use it as a context manager: on the way out (normally, on an error, on a kernel interrupt)
    every worker still alive is terminated and every named semaphore unlinked.
    """

    def __init__(self, start_method: str | None = None, *, lane: str = "worker") -> None:
        if not isinstance(lane, str):
            raise TypeError(f"lane must be a string (the name of each worker's lane), "
                            f"got {lane!r:.80}")
        if not lane.strip() or len(lane) > _MAX_LANE:
            raise ValueError(f"lane must be a non-empty name of at most {_MAX_LANE} characters, "
                             f"got {lane!r:.80}")
        self._group = ProcessGroup(start_method, lane=lane, start_spans=False)
        self.start_method = self._group.start_method
        self.ctx = self._group.ctx
        self.lane = lane
        # What the workers sent back, once `join` has waited (a `Run`; after a timeout, what came).
        self.outcome: Run | None = None
        self._tasks: list[tuple[Callable[..., Any], tuple]] = []
        self._owners: list[Any] = []
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

    @property
    def processes(self) -> list[Any]:
        """The started worker processes, in worker order."""
        return self._group.processes

    @property
    def warnings(self) -> list[str]:
        return self._group.warnings

    def lanes(self) -> list[str]:
        """Lane names in worker order (for `plot_timeline(..., lanes=...)`)."""
        return self._group.lanes()

    # -- running -----------------------------------------------------------------------------
    def launch(self) -> Workers:
        """Start every queued worker; they begin their work together (at a barrier)."""
        if not self._tasks:
            raise ValueError("number of workers must be at least 1: call add() first")
        if self.processes:
            raise ValueError("launch() was already called")
        self._barrier = self.ctx.Barrier(len(self._tasks))
        for index, (fn, args) in enumerate(self._tasks):
            self._group.start(_worker, (self._barrier, fn, *args),
                              lane=f"{self.lane} {index + 1}")
        return self

    def join(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Run:
        """Wait (at most `timeout` s) for every worker's report; raise TimeoutError if stuck
        (what the others sent is kept in `outcome`)."""
        check_timeout("timeout", timeout)
        try:
            self.outcome = self._group.wait(timeout, on_death=self._release_the_others)
        except TimeoutError:
            self.outcome = self._group.result()
            names = ", ".join(f"{self.lane} {i + 1}" for i, f in self.outcome.failures.items()
                              if f.type_name == "NoReport")
            raise TimeoutError(f"{names} did not finish within {timeout:g} s") from None
        return self.outcome

    def run(self, timeout: float = DEFAULT_TIMEOUT_SECONDS, *,
            keep_failures: bool = False) -> Run:
        """`launch`, then `join`; then, if a worker failed, raise RuntimeError saying which and
        why (its exception, as the worker reported it). With ``keep_failures=True`` the failures
        stay in `failures` for the caller to read, and nothing is raised."""
        check_timeout("timeout", timeout)
        if not isinstance(keep_failures, bool):
            raise TypeError(f"keep_failures must be True or False, got {keep_failures!r}")
        run = self.launch().join(timeout)
        if run.failures and not keep_failures:
            failed = "; ".join(f"{self.lane} {i + 1}: {failure}"
                               for i, failure in sorted(run.failures.items()))
            raise RuntimeError(f"a worker failed — {failed}")
        return run

    def _release_the_others(self, index: int) -> None:
        # A worker died without a word: the others may still wait for it at the start. Let them
        # go (they report a BrokenBarrierError) instead of waiting out their timeout.
        self._barrier.abort()

    @property
    def trace(self) -> Trace:
        """Every worker's spans (empty until `join`)."""
        if self.outcome is None:
            self.outcome = self._group.result()
        return self.outcome.trace

    @property
    def failures(self) -> dict[int, Failure]:
        """Worker index -> what it raised, or how it died (empty until `join`)."""
        return {} if self.outcome is None else self.outcome.failures

    @property
    def exitcodes(self) -> list[int | None]:
        return [p.exitcode for p in self.processes]

    def results(self) -> list[Any]:
        """Values in worker order (None for a worker that failed; see `failures`)."""
        if self.outcome is None:
            return [None] * len(self._tasks)
        return list(self.outcome.values)

    # -- cleanup -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every worker still alive, close their pipes, unlink every semaphore."""
        self._group.close()
        release_semaphores(self._barrier, *self._owners)

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

