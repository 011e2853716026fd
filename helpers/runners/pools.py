"""Run tasks on a pool of worker processes and see who ran what, when (chapters 04 and 08).

Data flow of `run_pool` (the same for every pool kind)::

    the kernel                                               worker process (reused)
    ----------                                               -----------------------
    jobs = [(fn, i, args), ...]
    process_pool(workers) / process_executor(workers)
      initializer: ignore SIGINT  ─────────────────────────>  (the parent stops its workers)
    Pool.map / imap / imap_unordered / starmap / apply_async
    Executor.map / submit+as_completed
      tasks, in chunks of `chunksize` ───────────────────>  _run_job((fn, i, args)):
                                                               one span "task i"
      results, wait(timeout) <─── TracedResult.one_span(...), one small pickle per task
    Trace: one lane per worker pid ──> plot_timeline, Run.tasks_per_lane

Every wait has a timeout. Any exception while waiting — a timeout, a crash, a KeyboardInterrupt
from the kernel's interrupt button — terminates the workers before it propagates. The workers
ignore SIGINT (jupyter_client sends the kernel's interrupt to its whole process group), so
stopping them is the parent's job, and it always does.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from helpers.course import (
    MAX_TIMEOUT_SECONDS,
    check_callable,
    check_choice,
    check_float,
    check_int,
    check_start_method,
    check_timeout,
    mp_context,
    quiet_fork_warnings,
)
from helpers.timeline import Recorder, Trace, TracedResult

from .cleanup import ignore_sigint, stop_executor, stop_pool
from .contract import DEFAULT_TIMEOUT_SECONDS, MAX_TASKS
from .processes import MAX_PROCESSES
from .run import Failure, Run

__all__ = [
    "POOL_KINDS",
    "default_chunksize",
    "interrupt_after",
    "process_executor",
    "process_pool",
    "run_pool",
]

POOL_KINDS = (
    "Pool.map",  # blocks, results in input order
    "Pool.imap",  # results one by one, in input order
    "Pool.imap_unordered",  # results one by one, in finishing order
    "Pool.starmap",  # like map, each item unpacked into arguments
    "Pool.apply_async",  # one call per task, a callback per result
    "Executor.map",  # concurrent.futures: results in input order
    "Executor.submit",  # one Future per task, consumed with as_completed
)
# Pool.map's own heuristic splits the work into about 4 chunks per worker: enough chunks to balance
# uneven tasks, few enough that dispatch costs little. `default_chunksize` reproduces it.
_CHUNKS_PER_WORKER = 4
# How often the interrupt timer looks whether it was cancelled before its start event came.
_POLL_SECONDS = 0.05
# How long the end of `interrupt_after` waits for its timer thread (which ends within a poll).
_TIMER_JOIN_SECONDS = 5.0


def default_chunksize(tasks: int, workers: int) -> int:
    """The chunksize `Pool.map` picks when given none: about 4 chunks per worker."""
    check_int("tasks", tasks, 0, MAX_TASKS)
    check_int("workers", workers, 1, MAX_PROCESSES)
    if tasks == 0:
        return 0
    return math.ceil(tasks / (workers * _CHUNKS_PER_WORKER))


def _check_warnings_to(warnings_to: object) -> None:
    if warnings_to is not None and not isinstance(warnings_to, list):
        raise TypeError(f"warnings_to must be a list to collect warnings into, or None, "
                        f"got {warnings_to!r}")


@contextmanager
def process_pool(workers: int, start_method: str | None = None, *,
                 maxtasksperchild: int | None = None,
                 warnings_to: list[str] | None = None) -> Iterator[Any]:
    """A `multiprocessing.Pool` whose workers are always terminated and reaped when the block ends.

    Like ``with Pool() as pool`` (which also terminates on exit), but the workers ignore SIGINT so
    an interrupt reaches only the kernel, and fork's 3.12+ warning is captured into `warnings_to`.
    """
    check_int("workers", workers, 1, MAX_PROCESSES)
    if maxtasksperchild is not None:
        check_int("maxtasksperchild", maxtasksperchild, 1, MAX_TASKS)
    _check_warnings_to(warnings_to)
    start_method = check_start_method(start_method)
    ctx = mp_context(start_method)
    with quiet_fork_warnings(start_method) as caught:
        pool = ctx.Pool(workers, initializer=ignore_sigint, maxtasksperchild=maxtasksperchild)
        try:
            yield pool
        finally:
            stop_pool(pool)
    if warnings_to is not None:
        warnings_to.extend(caught)


@contextmanager
def process_executor(workers: int, start_method: str | None = None, *,
                     warnings_to: list[str] | None = None) -> Iterator[ProcessPoolExecutor]:
    """A `ProcessPoolExecutor` shut down on exit; on an exception its workers are terminated.

    Either way its manager and feeder threads are joined and its semaphores unlinked
    (`helpers.runners.cleanup.stop_executor`): a timeout or an interrupt leaves nothing behind.
    """
    check_int("workers", workers, 1, MAX_PROCESSES)
    _check_warnings_to(warnings_to)
    start_method = check_start_method(start_method)
    ctx = mp_context(start_method)
    with quiet_fork_warnings(start_method) as caught:
        executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=ignore_sigint)
        failed = True
        try:
            yield executor
            failed = False
        finally:
            stop_executor(executor, kill=failed)
    if warnings_to is not None:
        warnings_to.extend(caught)


def _run_job(job: tuple[Callable[..., Any], int, tuple, bool]) -> tuple[int, Any]:
    """In a worker: run one task, record it as a span labelled with its index, return both.

    With the job's `capture` flag a task's exception comes back as a `Failure` (the run goes on);
    without it, it is raised, and the pool re-raises it in the kernel as `Pool.map` does. A task
    that returns a `TracedResult` (it recorded finer spans) has those spans kept instead of one.
    """
    fn, index, args, capture = job
    started = time.perf_counter_ns()
    try:
        value = fn(*args)
    except Exception as exc:
        if not capture:
            raise
        return index, Failure.from_exception(exc, traceback.format_exc())
    lane = f"worker [pid {os.getpid()}]"
    if not isinstance(value, TracedResult):  # the common case, and the cheap one
        return index, TracedResult.one_span(value, f"task {index}", started,
                                            time.perf_counter_ns(), lane=lane)
    recorder = Recorder(lane)
    value = recorder.record_result(f"task {index}", started, value)
    return index, TracedResult(value, recorder.recording())


def _run_job_star(fn: Callable[..., Any], index: int, args: tuple,
                  capture: bool) -> tuple[int, Any]:
    """`Pool.starmap` unpacks each item into arguments: the same job, received unpacked."""
    return _run_job((fn, index, args, capture))


def _warm(_: int) -> int:
    time.sleep(0.02)  # long enough that every worker gets one: all of them are up afterwards
    return os.getpid()


def run_pool(
    fn: Callable[..., Any],
    items: Sequence[Any],
    *,
    kind: str = "Pool.map",
    workers: int = 2,
    start_method: str | None = None,
    chunksize: int | None = None,
    warm_up: bool = True,
    maxtasksperchild: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    capture_failures: bool = False,
    on_result: Callable[[int, Any], None] | None = None,
    on_dispatch: Callable[[], None] | None = None,
) -> Run:
    """Run `fn` over `items` on a fresh pool of `kind` and record which worker ran which task.

    An item that is a tuple is unpacked into arguments (``fn(*item)``), anything else is passed as
    the one argument. `fn` must be a top-level function of a module. ``chunksize=None`` lets the
    pool choose (``Pool.map``: `default_chunksize`; executor: 1). With `warm_up`, the pool's
    workers are started before the clock starts, so `seconds` is the map alone and
    ``details["pool_start_seconds"]`` the price of the pool. A task's exception propagates, as
    with the pool itself, unless `capture_failures`: then it is a `Failure` in ``run.failures``.
    `on_result(index, value)` is called in the kernel as each result arrives — for
    ``Pool.apply_async`` in the pool's result-handler thread, so it must be quick: while it runs,
    no other result is delivered. `on_dispatch()` is called just before the tasks are handed
    over, once the pool is up (`interrupt_after` waits for it).
    """
    check_callable("fn", fn)
    check_choice("kind", kind, POOL_KINDS)
    check_int("workers", workers, 1, MAX_PROCESSES)
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise ValueError(f"items must be a list of task arguments (1 to {MAX_TASKS}), "
                         f"got {type(items).__name__}")
    check_int("number of items", len(items), 1, MAX_TASKS)
    if chunksize is not None:
        check_int("chunksize", chunksize, 1, MAX_TASKS)
    timeout = check_timeout("timeout", timeout)
    start_method = check_start_method(start_method)
    for name, hook in (("on_result", on_result), ("on_dispatch", on_dispatch)):
        if hook is not None:
            check_callable(name, hook)
    if maxtasksperchild is not None and kind.startswith("Executor"):
        raise ValueError("maxtasksperchild must be None for the executor kinds "
                         "(ProcessPoolExecutor has max_tasks_per_child only from Python 3.11 "
                         "and only without fork)")
    capture = bool(capture_failures)
    jobs = [(fn, i, item if isinstance(item, tuple) else (item,), capture)
            for i, item in enumerate(items)]
    caught: list[str] = []
    created = time.perf_counter()
    make = process_executor if kind.startswith("Executor") else process_pool
    options = {} if maxtasksperchild is None else {"maxtasksperchild": maxtasksperchild}
    with make(workers, start_method, warnings_to=caught, **options) as pool:
        if warm_up:
            warm = (pool.map(_warm, range(workers), timeout=timeout) if kind.startswith("Executor")
                    else pool.map_async(_warm, range(workers), chunksize=1).get(timeout))
            list(warm)
        if on_dispatch is not None:
            on_dispatch()
        started = time.perf_counter()
        kernel = Recorder(f"kernel [pid {os.getpid()}]", cpus=False)
        with kernel.span(f"waiting for {kind}", "wait"):
            results, order = _dispatch(pool, kind, jobs, chunksize, started + timeout, on_result)
        seconds = time.perf_counter() - started
    trace = Trace().extend(kernel.recording())
    values: list[Any] = []
    failures: dict[int, Failure] = {}
    for index, result in enumerate(results):
        if isinstance(result, Failure):
            failures[index] = result
            values.append(None)
        else:
            trace.extend(result)
            values.append(result.value)
    actual_chunksize = chunksize
    if chunksize is None:
        actual_chunksize = (default_chunksize(len(jobs), workers) if kind in
                            ("Pool.map", "Pool.starmap") else 1)
    return Run("pool", f"{kind}, {workers} workers ({start_method})", values, failures, seconds,
               trace, workers=workers, start_method=start_method, warnings=caught,
               details={"kind": kind, "chunksize": actual_chunksize,
                        "pool_start_seconds": started - created, "completion_order": order})


def _dispatch(pool, kind: str, jobs: list, chunksize: int | None, deadline: float,
              on_result: Callable[[int, Any], None] | None) -> tuple[list[TracedResult], list[int]]:
    """Hand `jobs` to `pool` the way `kind` does; return results in input order, arrival order."""

    def remaining() -> float:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"{kind} did not finish in time")
        return left

    results: list[Any] = [None] * len(jobs)
    order: list[int] = []

    def arrived(indexed: tuple[int, Any]) -> None:
        index, result = indexed
        results[index] = result
        order.append(index)
        if on_result is not None and isinstance(result, TracedResult):
            on_result(index, result.value)

    if kind in ("Pool.map", "Pool.starmap"):
        if kind == "Pool.map":
            pending = pool.map_async(_run_job, jobs, chunksize=chunksize)
        else:
            pending = pool.starmap_async(_run_job_star, jobs, chunksize=chunksize)
        for indexed in pending.get(remaining()):
            arrived(indexed)
    elif kind in ("Pool.imap", "Pool.imap_unordered"):
        method = pool.imap if kind == "Pool.imap" else pool.imap_unordered
        iterator = method(_run_job, jobs, chunksize=chunksize or 1)
        for _ in jobs:
            arrived(iterator.next(timeout=remaining()))
    elif kind == "Pool.apply_async":
        lock = threading.Lock()  # callbacks run in the pool's result-handler thread

        def callback(indexed: tuple[int, TracedResult]) -> None:
            with lock:
                arrived(indexed)

        pendings = [pool.apply_async(_run_job, (job,), callback=callback) for job in jobs]
        for pending in pendings:
            pending.get(remaining())  # re-raises a task's exception here, in the kernel
    elif kind == "Executor.map":
        mapped = pool.map(_run_job, jobs, timeout=remaining(), chunksize=chunksize or 1)
        for indexed in mapped:
            arrived(indexed)
    else:  # Executor.submit
        futures = [pool.submit(_run_job, job) for job in jobs]
        for future in as_completed(futures, timeout=remaining()):
            arrived(future.result())
    return results, order


# -- interrupting a long map -----------------------------------------------------------------------
@contextmanager
def interrupt_after(seconds: float, *, before: Callable[[], None] | None = None,
                    counting_from: threading.Event | None = None) -> Iterator[None]:
    """Raise `KeyboardInterrupt` in this (main) thread after `seconds`, as the kernel's ■ would.

    A timer thread sends SIGINT to the main thread (a real signal, so a blocking wait wakes up,
    unlike `_thread.interrupt_main`). The handler raises once, and only while the block runs: a
    signal that arrives as the block ends is dropped, so nothing escapes the ``with``. `before` is
    called in the timer thread just before the signal (a demo records the workers' pids there).
    With `counting_from`, the seconds count from when that event is set (for example by
    ``run_pool(on_dispatch=event.set)``), so the interrupt lands in the map, not in the middle of
    `Pool.__init__` — which, interrupted, leaves a pool nobody can terminate.
    """
    check_float("seconds", seconds, 0.0, MAX_TIMEOUT_SECONDS)
    if before is not None:
        check_callable("before", before)
    if counting_from is not None and not isinstance(counting_from, threading.Event):
        raise TypeError(f"counting_from must be a threading.Event, got {counting_from!r}")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("interrupt_after must be used from the main thread (signals go there)")
    armed = [True]

    def handler(signum, frame):
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt(f"interrupt_after({seconds:g}) fired")

    cancelled = threading.Event()

    def fire() -> None:
        if counting_from is not None:
            while not counting_from.wait(_POLL_SECONDS):
                if cancelled.is_set():
                    return
        if cancelled.wait(seconds):
            return
        if before is not None:
            before()
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, handler)
    timer = threading.Thread(target=fire, name="interrupt_after", daemon=True)
    timer.start()
    try:
        yield
    finally:
        armed[0] = False
        cancelled.set()
        # The timer sleeps on `cancelled` (set just above) or polls `counting_from` every
        # _POLL_SECONDS: it ends at once; the bound only keeps a stuck `before` from holding us.
        timer.join(_TIMER_JOIN_SECONDS)
        signal.signal(signal.SIGINT, previous)
