"""Run tasks in the kernel's own process: one after the other, or in threads.

The baselines of every comparison in the course::

    run_serial(fn, tasks)      the kernel's main thread ──fn(*t) for t in tasks──> Run("serial")
    run_threads(fn, tasks)     one thread per task ───────────────────────────> Run("threads")
                               (one process, one GIL: CPU-bound Python takes turns;
                                waits and GIL-releasing C code overlap)

Each task is one ``run`` span in its lane, or, when it returns a `TracedResult`, the finer spans
it recorded itself. Failures come back as `Failure` data, never as a half-finished run.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from helpers.course import check_callable, check_timeout
from helpers.timeline import Recorder, Trace

from .contract import DEFAULT_TIMEOUT_SECONDS, check_tasks
from .run import Failure, Run

__all__ = ["record_call", "run_serial", "run_threads"]

# One thread per task: far beyond what shows the GIL, low enough that a typo cannot exhaust memory.
_MAX_THREADS = 1_000


def _label(fn: Callable[..., Any], index: int) -> str:
    return f"{getattr(fn, '__name__', 'task')} #{index}"


def record_call(recorder: Recorder, label: str, fn: Callable[..., Any], args: Sequence[Any]) -> Any:
    """Call ``fn(*args)`` and record it in `recorder`: one ``run`` span, or, when `fn` returns a
    `TracedResult` (a task that records its own finer spans), those spans. Returns the value."""
    check_callable("fn", fn)
    start = time.perf_counter_ns()
    return recorder.record_result(label, start, fn(*args))


def _failure(exc: BaseException) -> Failure:
    return Failure.from_exception(exc, traceback.format_exc())


def run_serial(fn: Callable[..., Any], tasks: Sequence[Any]) -> Run:
    """The tasks one after the other in the kernel: the baseline of every speed-up."""
    check_callable("fn", fn)
    tasks = check_tasks(tasks)
    recorder = Recorder(f"serial [pid {os.getpid()}]")
    values: list[Any] = []
    failures: dict[int, Failure] = {}
    started = time.perf_counter()
    for index, args in enumerate(tasks):
        try:
            values.append(record_call(recorder, _label(fn, index), fn, args))
        except Exception as exc:
            values.append(None)
            failures[index] = _failure(exc)
    seconds = time.perf_counter() - started
    return Run("serial", "serial", values, failures, seconds, Trace().extend(recorder.recording()),
               workers=1, details={"pids": [os.getpid()]})


def run_threads(fn: Callable[..., Any], tasks: Sequence[Any], *,
                timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Run:
    """The same tasks in threads of this process, one thread each: one lane per thread.

    Threads cannot be killed: they are daemon threads, so an interrupted run never keeps the
    kernel from exiting, and a run past `timeout` raises `TimeoutError` (its threads finish on
    their own, the tasks being finite).
    """
    check_callable("fn", fn)
    tasks = check_tasks(tasks, _MAX_THREADS)
    timeout = check_timeout("timeout", timeout)
    values: list[Any] = [None] * len(tasks)
    recordings: list[Any] = [None] * len(tasks)
    failures: dict[int, Failure] = {}

    def work(index: int, args: Sequence[Any]) -> None:
        recorder = Recorder(f"thread {index + 1} [pid {os.getpid()}]")
        try:
            values[index] = record_call(recorder, _label(fn, index), fn, args)
        except Exception as exc:
            failures[index] = _failure(exc)
        recordings[index] = recorder.recording()

    threads = [threading.Thread(target=work, args=(i, a), daemon=True, name=f"thread-{i + 1}")
               for i, a in enumerate(tasks)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, started + timeout - time.perf_counter()))
        if thread.is_alive():
            raise TimeoutError(f"{thread.name} did not finish within {timeout:g} s")
    seconds = time.perf_counter() - started
    trace = Trace()
    for recording in recordings:
        trace.extend(recording)
    return Run("threads", f"{len(threads)} threads", values, failures, seconds, trace,
               workers=len(threads), details={"pids": [os.getpid()]})
