"""Chapter 04's demos built on `helpers.runners.run_pool`: why pools, chunksize, and failures.

- `compare_process_per_task`: a new process for every task against one pool for all of them.
- `compare_chunksizes`: a thousand tiny tasks with chunksize 1 against a good chunksize.
- `compare_uneven`: a few long tasks at the end of many short ones: Pool.map's default chunksize
  puts them all in the last chunk, one worker's, while a small chunksize shares them out.
- `exception_in_task`, `crash_in_worker`: what reaches the kernel when a task raises, and when a
  worker process dies (executor: `BrokenProcessPool` at once; `Pool`: the result never comes).
- `interrupt_demo`: a long map interrupted like the kernel's ■ button; the workers are gone after.
- `maxtasksperchild_demo`: workers replaced after k tasks, seen as new lanes on the timeline.

Every report is data (a dataclass with a `__str__`) so a notebook cell prints a friendly message
instead of a red traceback, and a test asserts on the fields.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import TimeoutError as PoolTimeoutError

from helpers.course import (
    MAX_TIMEOUT_SECONDS,
    check_float,
    check_int,
    check_start_method,
    check_timeout,
    one_core_note,
    usable_cores,
)
from helpers.runners import (
    MAX_PROCESSES,
    Run,
    default_chunksize,
    interrupt_after,
    process_executor,
    process_pool,
    run_pool,
    run_processes,
)
from helpers.runners.contract import DEFAULT_TIMEOUT_SECONDS
from helpers.workloads import cpu_task

from .panel import task_items, uneven_items
from .views import core_seconds, workers_computing

__all__ = [
    "ChunksizeComparison",
    "FailureReport",
    "InterruptReport",
    "PerTaskComparison",
    "UnevenComparison",
    "compare_chunksizes",
    "compare_process_per_task",
    "compare_uneven",
    "crash_in_worker",
    "die_on",
    "exception_in_task",
    "fail_on",
    "interrupt_demo",
    "live_children",
    "maxtasksperchild_demo",
]


# Two times this close are "the same" when judging a chunksize comparison on a busy machine.
_SAME_TIME = 0.1
# The failure demos' task indexes: far more tasks than any demo builds.
_MAX_INDEX = 100_000


# -- a new process per task vs a pool --------------------------------------------------------------
@dataclass
class PerTaskComparison:
    tasks: int
    workers: int
    start_method: str
    per_task_seconds: float  # a new process for each task, `workers` at a time
    pool_seconds: float  # one pool, its start included
    pool_start_seconds: float

    def __str__(self) -> str:
        return (f"{self.tasks} tasks, {self.workers} at a time ({self.start_method}): "
                f"a new process per task {self.per_task_seconds:.2f} s, "
                f"one pool {self.pool_seconds:.2f} s (of which starting it "
                f"{self.pool_start_seconds:.2f} s) — the pool is "
                f"{self.per_task_seconds / self.pool_seconds:.1f}× faster")


def compare_process_per_task(tasks: int = 20, task_ms: float = 5.0, *, workers: int = 2,
                             start_method: str) -> PerTaskComparison:
    """The same small tasks, once with a process started per task, once on one pool."""
    check_int("tasks", tasks, 1, 500)  # 500 spawned processes is already a minute
    check_int("workers", workers, 1, MAX_PROCESSES)
    start_method = check_start_method(start_method)
    items = task_items(tasks, task_ms)
    started = time.perf_counter()
    for first in range(0, tasks, workers):  # `workers` processes at a time, like the pool
        run_processes(cpu_task, [(n,) for n in items[first:first + workers]],
                      start_method=start_method)
    per_task = time.perf_counter() - started
    pool = run_pool(cpu_task, items, workers=workers, start_method=start_method)
    return PerTaskComparison(tasks, workers, start_method, per_task,
                             pool.details["pool_start_seconds"] + pool.seconds,
                             pool.details["pool_start_seconds"])


# -- chunksize -------------------------------------------------------------------------------------
@dataclass
class ChunksizeComparison:
    runs: list[Run]
    load_average: float | None = None  # the 1-minute load average when the runs ended
    cores: int | None = None

    def __str__(self) -> str:
        best = min(r.seconds for r in self.runs)
        lines = [f"chunksize {r.details['chunksize']:>5}: {r.seconds:.3f} s "
                 f"({r.seconds / best:.2f}× the best), "
                 f"{workers_computing(r.trace, r.seconds, self.cores):.2f} workers computing on "
                 "average" for r in self.runs]
        smallest = min(self.runs, key=lambda r: r.details["chunksize"])
        if self.cores == 1:  # the load is beside the point: the workers share one core anyway
            lines.append(one_core_note(
                "the workers take turns on it: at most one computes at any moment",
                "both workers would compute at once, and the gaps of chunksize 1 would "
                "still make it the slowest", cores=1))
            return "\n".join(lines)
        busy = (self.load_average is not None and self.cores is not None
                and self.load_average > self.cores)
        if busy and smallest.seconds <= best * (1 + _SAME_TIME):
            lines.append(f"(chunksize {smallest.details['chunksize']} was not the slowest: the "
                         f"load average was {self.load_average:.1f} on {self.cores} cores, so "
                         "these times measure the other busy programs more than the dispatch "
                         "cost — run it again on a quiet machine)")
        return "\n".join(lines)


def compare_chunksizes(tasks: int = 1000, task_ms: float = 0.2, *, workers: int = 2,
                       chunksizes: tuple[int, ...] | None = None,
                       start_method: str) -> ChunksizeComparison:
    """Many tiny tasks with each chunksize (default: 1 and Pool.map's own choice)."""
    items = task_items(tasks, task_ms)
    check_int("workers", workers, 1, MAX_PROCESSES)
    start_method = check_start_method(start_method)
    if chunksizes is None:
        chunksizes = (1, default_chunksize(tasks, workers))
    if not isinstance(chunksizes, (tuple, list)) or not 1 <= len(chunksizes) <= 8:
        raise ValueError(f"chunksizes must be a list of 1 to 8 chunksizes, got {chunksizes!r}")
    for c in chunksizes:
        check_int("each of chunksizes", c, 1, tasks)
    runs = [run_pool(cpu_task, items, kind="Pool.map", workers=workers, chunksize=c,
                     start_method=start_method) for c in chunksizes]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # not on Windows
    return ChunksizeComparison(runs, load, usable_cores())


# What one core does to the uneven-tasks comparison, and what more cores would show instead.
_UNEVEN_ON_ONE_CORE = ("the workers take turns on it and every chunksize takes about as long: the "
                      "balance shows in each worker's seconds of work, not in the total")
_UNEVEN_WITH_MORE = ("chunksize 1 would finish clearly sooner, the long tasks shared out and both "
                    "workers busy to the end")


@dataclass
class UnevenComparison:
    """The same uneven tasks with each chunksize: wall time and each worker's share of the work."""

    long_tasks: int
    runs: list[Run]

    def busy_per_worker(self, run: Run) -> list[float]:
        """Seconds of work per worker on a core (`core_seconds`: turns on a shared core counted
        once), largest first."""
        on_cores = core_seconds(run.trace)
        return sorted((on_cores[lane] for lane in run.tasks_per_lane()), reverse=True)

    def __str__(self) -> str:
        lines = [f"chunksize {r.details['chunksize']:>4}: {r.seconds:.2f} s; seconds of work per "
                 f"worker {[round(b, 2) for b in self.busy_per_worker(r)]}" for r in self.runs]
        note = one_core_note(_UNEVEN_ON_ONE_CORE, _UNEVEN_WITH_MORE)
        return "\n".join(lines + [note] if note else lines)


def compare_uneven(tasks: int = 48, task_ms: float = 5.0, long_tasks: int = 4, *,
                   workers: int = 2, chunksize: int = 1, start_method: str) -> UnevenComparison:
    """`tasks` short tasks whose last `long_tasks` are `LONG_FACTOR`× longer, with Pool.map's
    default chunksize and with `chunksize`: who ends up with the long ones?"""
    items = uneven_items(tasks, task_ms, long_tasks)
    check_int("workers", workers, 1, MAX_PROCESSES)
    check_int("chunksize", chunksize, 1, tasks)
    start_method = check_start_method(start_method)
    runs = [run_pool(cpu_task, items, kind="Pool.map", workers=workers, chunksize=c,
                     start_method=start_method)
            for c in (default_chunksize(tasks, workers), chunksize)]
    return UnevenComparison(long_tasks, runs)


# -- failures --------------------------------------------------------------------------------------
def fail_on(index: int, bad_index: int = 3) -> int:
    """A task that raises for one input: the exception travels back to the kernel."""
    check_int("index", index, 0, _MAX_INDEX)
    check_int("bad_index", bad_index, 0, _MAX_INDEX)
    if index == bad_index:
        raise ValueError(f"task {index} cannot be computed")
    return index * index


def die_on(index: int, bad_index: int = 2) -> int:
    """A task whose worker process dies on one input (a segfault or the OOM killer, simulated)."""
    check_int("index", index, 0, _MAX_INDEX)
    check_int("bad_index", bad_index, 0, _MAX_INDEX)
    if index == bad_index:
        os._exit(70)
    time.sleep(0.01)
    return index


@dataclass
class FailureReport:
    """What the kernel saw when a task failed: the exception, how long it took, what survived."""

    pool: str
    raised: str  # exception type name, or "" if nothing was raised
    message: str
    seconds: float
    worker_traceback: str = ""  # the worker's traceback, sent back with the exception
    results_kept: int = 0

    def __str__(self) -> str:
        if not self.raised:
            return f"{self.pool}: no exception ({self.seconds:.2f} s)"
        text = (f"{self.pool}: {self.raised}: {self.message} "
                f"(after {self.seconds:.2f} s, {self.results_kept} results kept)")
        if self.worker_traceback:
            text += "\n  from the worker: " + self.worker_traceback.strip().splitlines()[-1]
        return text


def _remote_traceback(exc: BaseException) -> str:
    """The worker's traceback text, which both pools attach to the exception as its cause."""
    cause = exc.__cause__  # multiprocessing.pool.RemoteTraceback / concurrent's _RemoteTraceback
    if cause is None:
        return ""
    lines = str(getattr(cause, "tb", cause)).strip().splitlines()
    return "\n".join(line for line in lines if line.strip() != '"""')


def exception_in_task(tasks: int = 8, bad_index: int = 3, *, workers: int = 2,
                      start_method: str) -> list[FailureReport]:
    """One task raises: `Pool.map` loses every result, `submit` keeps the others."""
    check_int("tasks", tasks, 1, 10_000)  # before the task list is built
    check_int("bad_index", bad_index, 0, tasks - 1)
    check_int("workers", workers, 1, MAX_PROCESSES)
    start_method = check_start_method(start_method)
    reports = []
    started = time.perf_counter()
    try:
        run_pool(fail_on, [(i, bad_index) for i in range(tasks)], kind="Pool.map",
                 workers=workers, start_method=start_method, warm_up=False)
        reports.append(FailureReport("Pool.map", "", "", time.perf_counter() - started))
    except ValueError as exc:
        reports.append(FailureReport("Pool.map", type(exc).__name__, str(exc),
                                     time.perf_counter() - started, _remote_traceback(exc)))
    started = time.perf_counter()
    kept, failed = 0, None
    with process_executor(workers, start_method) as executor:
        futures = [executor.submit(fail_on, i, bad_index) for i in range(tasks)]
        for future in futures:
            try:
                future.result(timeout=DEFAULT_TIMEOUT_SECONDS)
                kept += 1
            except ValueError as exc:
                failed = exc
    reports.append(FailureReport(
        "Executor.submit", type(failed).__name__ if failed else "", str(failed or ""),
        time.perf_counter() - started,
        _remote_traceback(failed) if failed else "", kept))
    return reports


def crash_in_worker(*, start_method: str, pool_wait_seconds: float = 1.0,
                    workers: int = 2) -> list[FailureReport]:
    """A worker process dies mid-task: the executor says so at once, `Pool` never answers.

    `Pool` replaces the dead worker but the task it held is lost, so `map` would wait forever;
    here it waits `pool_wait_seconds` and reports the timeout.
    """
    check_float("pool_wait_seconds", pool_wait_seconds, 0.05, 60.0)
    check_int("workers", workers, 1, MAX_PROCESSES)
    start_method = check_start_method(start_method)
    args = [(i, 2) for i in range(6)]
    reports = []
    started = time.perf_counter()
    try:
        with process_executor(workers, start_method) as executor:
            list(executor.map(die_on, *zip(*args), timeout=DEFAULT_TIMEOUT_SECONDS))
        reports.append(FailureReport("Executor.map", "", "", time.perf_counter() - started))
    except BrokenProcessPool as exc:
        reports.append(FailureReport("Executor.map", type(exc).__name__, str(exc),
                                     time.perf_counter() - started))
    started = time.perf_counter()
    try:
        with process_pool(workers, start_method) as pool:
            pool.starmap_async(die_on, args).get(pool_wait_seconds)
        reports.append(FailureReport("Pool.starmap", "", "", time.perf_counter() - started))
    except PoolTimeoutError:
        reports.append(FailureReport(
            "Pool.starmap", "TimeoutError",
            f"no result after {pool_wait_seconds:g} s — without a timeout it waits forever",
            time.perf_counter() - started))
    return reports


# -- interrupting a long map -----------------------------------------------------------------------
@dataclass
class InterruptReport:
    interrupted: bool
    after_seconds: float
    workers_at_interrupt: list[int] = field(default_factory=list)
    alive_afterwards: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.interrupted:
            return "the map finished before the interrupt"
        alive = ", ".join(map(str, self.alive_afterwards)) or "none"
        return (f"KeyboardInterrupt {self.after_seconds:.2f} s into the map; workers then: "
                f"{self.workers_at_interrupt}; still running afterwards: {alive}")


def live_children() -> list[int]:
    """Live descendants of the kernel, without multiprocessing's own long-lived helpers.

    Under forkserver the workers are children of the fork server (and share its command line), so
    descendants are walked recursively and only the server and resource tracker are left out.
    """
    import psutil

    found = []
    me = psutil.Process()
    for child in me.children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(child.cmdline())
            helper = "resource_tracker" in command or (
                "forkserver" in command and child.ppid() == me.pid)
        except psutil.Error:
            continue
        if not helper:
            found.append(child.pid)
    return found


def interrupt_demo(after_seconds: float = 0.5, *, workers: int = 2, start_method: str,
                   work_seconds: float = 30.0, check_after: float = 0.5) -> InterruptReport:
    """Start a long `Pool.map`, interrupt it after `after_seconds`, see whether workers remain."""
    check_float("after_seconds", after_seconds, 0.0, 60.0)
    check_float("work_seconds", work_seconds, after_seconds, MAX_TIMEOUT_SECONDS)
    check_int("workers", workers, 1, MAX_PROCESSES)
    check_timeout("check_after", check_after, 0.01, 60.0)
    start_method = check_start_method(start_method)
    before = set(live_children())
    seen: list[int] = []
    started: list[float] = []

    def record_workers() -> None:
        seen.extend(p for p in live_children() if p not in before)

    dispatched = threading.Event()
    interrupted, elapsed = False, 0.0
    try:
        with interrupt_after(after_seconds, before=record_workers, counting_from=dispatched):
            # about `work_seconds` of wall time: one-second tasks, `workers` of them per second
            run_pool(cpu_task, task_items(math.ceil(work_seconds) * workers, 1000.0),
                     workers=workers, start_method=start_method, chunksize=1,
                     on_dispatch=lambda: (dispatched.set(), started.append(time.perf_counter())))
    except KeyboardInterrupt:
        interrupted = True
        elapsed = time.perf_counter() - started[0] if started else 0.0
    deadline = time.perf_counter() + check_after
    alive = [p for p in seen if p in live_children()]
    while alive and time.perf_counter() < deadline:
        time.sleep(0.02)
        alive = [p for p in seen if p in live_children()]
    return InterruptReport(interrupted, elapsed, sorted(seen), alive)


# -- maxtasksperchild ------------------------------------------------------------------------------
def maxtasksperchild_demo(tasks: int = 12, maxtasksperchild: int = 3, *, workers: int = 2,
                          task_ms: float = 10.0, start_method: str) -> Run:
    """Workers retire after `maxtasksperchild` tasks: the timeline shows their replacements."""
    check_int("maxtasksperchild", maxtasksperchild, 1, 10_000)
    check_int("workers", workers, 1, MAX_PROCESSES)
    return run_pool(cpu_task, task_items(tasks, task_ms), kind="Pool.map", workers=workers,
                    start_method=start_method, chunksize=1, maxtasksperchild=maxtasksperchild,
                    warm_up=False)
