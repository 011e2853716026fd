"""Chapter 04's machinery: run tasks on a pool of worker processes and see who ran what, when.

Data flow of `run_pool` (the same for every pool kind)::

    the kernel                                               worker process (reused)
    ----------                                               -----------------------
    jobs = [(fn, i, args), ...]
    process_pool(workers) / process_executor(workers)
      initializer: ignore SIGINT  ─────────────────────────>  (the parent stops its workers)
    Pool.map / imap / imap_unordered / starmap / apply_async
    Executor.map / submit+as_completed
      tasks, in chunks of `chunksize` ───────────────────>  _run_job((fn, i, args)):
                                                               Recorder span "task i"
      results, wait(timeout) <─── TracedResult(value, recording), one pickle per task
    Trace: one lane per worker pid ──> plot_timeline, tasks_per_worker

Every wait has a timeout. Any exception while waiting — a timeout, a crash, a KeyboardInterrupt
from the kernel's interrupt button — terminates the workers before it propagates: a kernel interrupt
otherwise leaves pool workers running (ipython#3400).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .course import QUICK, available_start_methods, check_choice, check_float, check_int, mp_context
from .processes import (
    MAX_PROCESSES,
    _stop_executor,
    quiet_fork_warnings,
    release_semaphores,
    stop_processes,
)
from .timeline import Recorder, Trace, TracedResult, plot_timeline
from .workloads import MAX_ITERATIONS, cpu_task, iterations_for

__all__ = [
    "POOL_KINDS",
    "PoolRun",
    "default_chunksize",
    "demo",
    "interrupt_after",
    "make_panel",
    "process_executor",
    "process_pool",
    "run_pool",
    "task_items",
    "tasks_per_worker",
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
# A wait longer than this means something is stuck; see processes.DEFAULT_TIMEOUT_SECONDS.
DEFAULT_TIMEOUT_SECONDS = 120.0
# Tens of thousands of tasks are plenty to show dispatch overhead; more only fill memory with spans.
MAX_TASKS = 100_000
_MAX_SECONDS = 3600.0
# Pool.map's own heuristic splits the work into about 4 chunks per worker: enough chunks to balance
# uneven tasks, few enough that dispatch costs little. `default_chunksize` reproduces it.
_CHUNKS_PER_WORKER = 4
# How often the interrupt timer looks whether it was cancelled before its start event came.
_POLL_SECONDS = 0.05


def _ignore_sigint() -> None:
    """Pool initializer: a kernel interrupt signals the whole process group; the parent decides.

    Without it each worker dies of its own KeyboardInterrupt and prints a traceback into the cell.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_chunksize(tasks: int, workers: int) -> int:
    """The chunksize `Pool.map` picks when given none: about 4 chunks per worker."""
    check_int("tasks", tasks, 0, MAX_TASKS)
    check_int("workers", workers, 1, MAX_PROCESSES)
    if tasks == 0:
        return 0
    return math.ceil(tasks / (workers * _CHUNKS_PER_WORKER))


@contextmanager
def process_pool(workers: int, start_method: str, *, maxtasksperchild: int | None = None,
                 warnings_to: list[str] | None = None) -> Iterator[Any]:
    """A `multiprocessing.Pool` whose workers are always terminated and reaped when the block ends.

    Like ``with Pool() as pool`` (which also terminates on exit), but the workers ignore SIGINT so
    an interrupt reaches only the kernel, and fork's 3.12+ warning is captured into `warnings_to`.
    """
    check_int("workers", workers, 1, MAX_PROCESSES)
    if maxtasksperchild is not None:
        check_int("maxtasksperchild", maxtasksperchild, 1, MAX_TASKS)
    ctx = mp_context(start_method)
    with quiet_fork_warnings(start_method) as caught:
        pool = ctx.Pool(workers, initializer=_ignore_sigint, maxtasksperchild=maxtasksperchild)
        try:
            yield pool
        finally:
            workers_now = list(getattr(pool, "_pool", []))  # for the reaping check below
            pool.terminate()  # stops the workers and the pool's threads, joins them
            pool.join()
            stop_processes(workers_now)  # already gone; guarantees nothing is left if not
            release_semaphores(pool)
    if warnings_to is not None:
        warnings_to.extend(caught)


@contextmanager
def process_executor(workers: int, start_method: str, *,
                     warnings_to: list[str] | None = None) -> Iterator[ProcessPoolExecutor]:
    """A `ProcessPoolExecutor` shut down on exit; on an exception its workers are terminated."""
    check_int("workers", workers, 1, MAX_PROCESSES)
    ctx = mp_context(start_method)
    with quiet_fork_warnings(start_method) as caught:
        executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_ignore_sigint)
        try:
            yield executor
        except BaseException:
            _stop_executor(executor)
            raise
        else:
            executor.shutdown(wait=True, cancel_futures=True)
        finally:
            release_semaphores(executor)
    if warnings_to is not None:
        warnings_to.extend(caught)


def _run_job(job: tuple[Callable[..., Any], int, tuple]) -> tuple[int, TracedResult]:
    """In a worker: run one task, record it as a span labelled with its index, return both."""
    fn, index, args = job
    recorder = Recorder(f"worker [pid {os.getpid()}]")
    with recorder.span(f"task {index}"):
        value = fn(*args)
    return index, TracedResult(value, recorder.recording())


def _run_job_star(fn: Callable[..., Any], index: int, args: tuple) -> tuple[int, TracedResult]:
    """`Pool.starmap` unpacks each item into arguments: the same job, received unpacked."""
    return _run_job((fn, index, args))


def _warm(_: int) -> int:
    time.sleep(0.02)  # long enough that every worker gets one: all of them are up afterwards
    return os.getpid()


@dataclass
class PoolRun:
    """What one pool run did: values in input order, the timeline, the wall times."""

    kind: str
    workers: int
    start_method: str
    chunksize: int | None
    values: list[Any]
    trace: Trace
    seconds: float  # the map itself, from submitting to the last result
    pool_start_seconds: float  # creating (and warming) the pool, before the clock above
    completion_order: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def busy_seconds(self) -> float:
        """Work done, summed over workers: what one worker alone would need, roughly."""
        return sum(e.duration_ns for e in self.trace.select(kind="run")) / 1e9

    def parallelism(self) -> float:
        """Busy time over wall time: how many workers were computing, on average."""
        return self.busy_seconds / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        counts = tasks_per_worker(self.trace)
        return (f"{self.kind}: {len(self.values)} tasks on {self.workers} workers "
                f"({self.start_method}, chunksize {self.chunksize or 'n/a'}) in "
                f"{self.seconds:.2f} s; pool start {self.pool_start_seconds:.2f} s; "
                f"on average {self.parallelism():.2f} workers computing; "
                f"tasks per worker {sorted(counts.values(), reverse=True)}")


def tasks_per_worker(trace: Trace) -> Counter:
    """How many tasks each worker lane ran."""
    return Counter(e.lane for e in trace.select(kind="run"))


def run_pool(
    fn: Callable[..., Any],
    items: Sequence[Any],
    *,
    kind: str = "Pool.map",
    workers: int = 2,
    start_method: str,
    chunksize: int | None = None,
    warm_up: bool = True,
    maxtasksperchild: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    on_result: Callable[[int, Any], None] | None = None,
    on_dispatch: Callable[[], None] | None = None,
) -> PoolRun:
    """Run `fn` over `items` on a fresh pool of `kind` and record which worker ran which task.

    An item that is a tuple is unpacked into arguments (``fn(*item)``), anything else is passed as
    the one argument. `fn` must be a top-level function of a module. ``chunksize=None`` lets the
    pool choose (``Pool.map``: `default_chunksize`; executor: 1). With `warm_up`, the pool's
    workers are started before the clock starts, so `seconds` is the map alone and
    `pool_start_seconds` the price of the pool. `on_result(index, value)` is called in the kernel
    as each result arrives (in a pool thread for ``Pool.apply_async``); `on_dispatch()` just
    before the tasks are handed over, once the pool is up (`interrupt_after` waits for it).
    """
    check_choice("kind", kind, POOL_KINDS)
    check_int("workers", workers, 1, MAX_PROCESSES)
    check_int("tasks", len(items), 1, MAX_TASKS)
    if chunksize is not None:
        check_int("chunksize", chunksize, 1, MAX_TASKS)
    check_float("timeout", timeout, 0.001, _MAX_SECONDS)
    check_choice("start_method", start_method, available_start_methods())
    if maxtasksperchild is not None and kind.startswith("Executor"):
        raise ValueError("maxtasksperchild must be None for the executor kinds "
                         "(ProcessPoolExecutor has max_tasks_per_child only from Python 3.11 "
                         "and only without fork)")
    jobs = [(fn, i, item if isinstance(item, tuple) else (item,)) for i, item in enumerate(items)]
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
    values = []
    for result in results:
        trace.extend(result.recording)
        values.append(result.value)
    actual_chunksize = chunksize
    if chunksize is None:
        actual_chunksize = (default_chunksize(len(jobs), workers) if kind in
                            ("Pool.map", "Pool.starmap") else 1)
    return PoolRun(kind, workers, start_method, actual_chunksize, values, trace, seconds,
                   started - created, order, caught)


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

    def arrived(indexed: tuple[int, TracedResult]) -> None:
        index, result = indexed
        results[index] = result
        order.append(index)
        if on_result is not None:
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
    check_float("seconds", seconds, 0.0, _MAX_SECONDS)
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
        timer.join()
        signal.signal(signal.SIGINT, previous)


# -- the chapter's panel ---------------------------------------------------------------------------
# Tiny tasks show dispatch overhead, big ones the speed-up; beyond 2 s per task a cell gets long.
MIN_TASK_MS, MAX_TASK_MS = 0.05, 2000.0
DEFAULT_TASKS = 40 if QUICK else 200
DEFAULT_TASK_MS = 5.0 if QUICK else 20.0


def task_items(tasks: int, task_ms: float) -> list[int]:
    """`tasks` equal `cpu_task` sizes of about `task_ms` milliseconds each on this machine."""
    check_int("tasks", tasks, 1, MAX_TASKS)
    check_float("task_ms", task_ms, MIN_TASK_MS, MAX_TASK_MS)
    return [min(MAX_ITERATIONS, iterations_for(task_ms / 1e3))] * tasks


def demo(fig, progress, *, workers: int, tasks: int, task_ms: float, chunksize: int,
         kind: str, start_method: str) -> str:
    """Panel demo: one pool run drawn as a timeline; chunksize 0 means "let the pool choose"."""
    progress(0.1, "starting the pool…")
    run = run_pool(cpu_task, task_items(tasks, task_ms), kind=kind, workers=workers,
                   start_method=start_method, chunksize=chunksize or None)
    ax = fig.subplots()
    plot_timeline(run.trace, ax, title=f"{kind}: {tasks} tasks of ~{task_ms:g} ms, "
                                       f"chunksize {run.chunksize}")
    return run.summary()


def make_panel(start_methods: Sequence[str] | None = None):
    """The chapter 04 panel: workers, tasks, task size, chunksize, pool kind, start method."""
    from .processes import kernel_safe_start_method
    from .widgets import Choice, Float, Int, Panel

    methods = list(start_methods) if start_methods is not None else available_start_methods()
    default = kernel_safe_start_method()
    return Panel(
        "Pools: who ran which task",
        [Int("workers", 1, max(8, 2 * (os.cpu_count() or 1)), default=2),
         Int("tasks", 1, 2000, default=DEFAULT_TASKS),
         Float("task_ms", 0.1, 200.0, default=DEFAULT_TASK_MS, step=0.1,
               label="ms per task"),
         Int("chunksize", 0, 500, default=0, label="chunksize (0 = pool's choice)"),
         Choice("kind", POOL_KINDS, default="Pool.map"),
         Choice("start_method", methods, default=default if default in methods else methods[0])],
        demo,
    )
