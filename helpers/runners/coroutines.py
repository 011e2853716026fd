"""Run tasks as coroutines: gevent greenlets, asyncio tasks, and greenlets inside worker processes.

Three runners with the shape of every other runner (``runner(fn, tasks) -> Run``)::

    run_gevent(fn, tasks, size)        a fresh thread of the kernel, its own gevent hub
                                       feeder greenlet ──spawn──> gevent.pool.Pool(size)
                                       each task a greenlet; lane = "greenlet k", the k-th slot
    run_asyncio(fn, tasks, size)       a fresh thread running asyncio.run(...)
                                       coroutine function: one asyncio task each (Semaphore(size))
                                       plain function:     asyncio.to_thread(fn, *args), bounded
    run_gevent_in_processes(fn, tasks, workers, size)
                                       Pool(workers) of processes ──one chunk each──> worker:
                                       the same greenlet pool as run_gevent, in that process
                                       lanes "worker <pid> greenlet k"; one pickle back per chunk

No monkey patching, anywhere: gevent is used as it is, so a task must wait in gevent's own
functions (``gevent.sleep``, gevent's sockets) for greenlets to overlap; plain ``time.sleep`` or
CPU-bound code holds the hub and the greenlets take turns — exactly what the chapter measures.
Both loops run in a thread of their own, started and joined by the call: the kernel's main thread
keeps its own (unpatched, unused) hub and event loop, and nothing is left running afterwards.

A task that records its own spans returns a `TracedResult`; its spans are filed under its lane.
Otherwise a task is one ``run`` span. Failures come back as `Failure` data. Every wait is bounded
by `timeout`; an interrupt (or the timeout) stops the greenlets at their next wait and the asyncio
tasks at theirs, and terminates the worker processes.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from helpers.course import check_callable, check_int, check_timeout
from helpers.timeline import Recorder, Trace

from .contract import DEFAULT_TIMEOUT_SECONDS, MAX_TASKS, check_tasks
from .pools import process_pool
from .processes import MAX_PROCESSES
from .run import Failure, Run

__all__ = ["MAX_CONCURRENCY", "run_asyncio", "run_gevent", "run_gevent_in_processes"]

# The most greenlets or asyncio tasks in flight at once: tens of thousands fit in memory easily
# (a few KiB each, chapter 05); the cap only stops a typo from filling it.
MAX_CONCURRENCY = 50_000
# asyncio.to_thread runs blocking calls on a thread pool; this bounds its threads (the default
# executor's own bound is min(32, cores + 4)).
_MAX_TO_THREAD_WORKERS = 256
# How often the loop thread looks whether the kernel asked it to stop (interrupt or timeout).
_POLL_SECONDS = 0.02
# After a stop request, the loop thread gets this long to cancel its tasks and finish.
_STOP_SECONDS = 5.0


class _Slots:
    """Lane numbers for tasks running at once: a task takes the lowest free one, gives it back."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 1

    def take(self) -> int:
        if self._free:
            self._free.sort()
            return self._free.pop(0)
        self._next += 1
        return self._next - 1

    def give(self, slot: int) -> None:
        self._free.append(slot)


def _record(recorders: dict[str, Recorder], lane: str, label: str, start: int, value: Any) -> Any:
    """File a finished task in its lane's recorder (made on the lane's first task). Called from
    greenlets, the loop and `to_thread` workers: each adds its own lane's key, never another's."""
    recorder = recorders.get(lane)
    if recorder is None:
        recorder = recorders[lane] = Recorder(lane)
    return recorder.record_result(label, start, value)


def _failure(exc: BaseException) -> Failure:
    return Failure.from_exception(exc, traceback.format_exc())


def _greenlet_pool(fn: Callable[..., Any], tasks: Sequence[tuple[int, tuple]], size: int | None,
                   lane_prefix: str, deadline: float, stop: threading.Event | None):
    """In the calling thread: run `tasks` ((index, args) pairs) on a gevent pool of `size`.

    Returns ``({index: value}, {index: Failure}, Trace)``. Stops at `deadline` or when `stop` is
    set: the remaining greenlets are killed (at their next wait) and TimeoutError is raised.
    """
    import gevent
    import gevent.event
    import gevent.pool

    pool = gevent.pool.Pool(size) if size else gevent.pool.Group()
    finished = gevent.event.Event()
    slots, recorders = _Slots(), {}
    values: dict[int, Any] = {}
    failures: dict[int, Failure] = {}

    def one(index: int, args: tuple) -> None:
        slot = slots.take()
        start = time.perf_counter_ns()
        try:
            values[index] = _record(recorders, f"{lane_prefix}greenlet {slot}", f"task {index}",
                                    start, fn(*args))
        except Exception as exc:
            failures[index] = _failure(exc)
        finally:
            slots.give(slot)
            if len(values) + len(failures) == len(tasks):
                finished.set()

    def feed() -> None:
        for index, args in tasks:
            pool.spawn(one, index, args)  # waits for a free slot when the pool is full

    feeder = gevent.spawn(feed)
    try:
        while not finished.wait(_POLL_SECONDS):
            if (stop is not None and stop.is_set()) or time.monotonic() > deadline:
                raise TimeoutError(f"{len(tasks) - len(values) - len(failures)} greenlets "
                                   "had not finished in time")
    finally:
        feeder.kill(block=False)
        pool.kill(block=True, timeout=_STOP_SECONDS)
    trace = Trace()
    for recorder in recorders.values():
        trace.extend(recorder.recording())
    return values, failures, trace


def _in_thread(name: str, body: Callable[[threading.Event], Any], timeout: float) -> Any:
    """Run ``body(stop)`` in a fresh daemon thread and return what it returns (or raise what it
    raised). An interrupt or `timeout` in the kernel sets `stop` and waits briefly for the end."""
    outcome: dict[str, Any] = {}
    stop = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = body(stop)
        except BaseException as exc:  # handed to the caller's thread, raised there
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        thread.join(timeout + _STOP_SECONDS)
    finally:
        if thread.is_alive():
            stop.set()
            thread.join(_STOP_SECONDS)
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:
        raise TimeoutError(f"{name} did not finish within {timeout:g} s")
    return outcome["value"]


def _gevent_thread(fn, indexed, size, prefix, deadline):
    def body(stop: threading.Event):
        import gevent

        try:
            return _greenlet_pool(fn, indexed, size, prefix, deadline, stop)
        finally:
            gevent.get_hub().destroy(destroy_loop=True)  # this thread's hub goes with it

    return body


def run_gevent(fn: Callable[..., Any], tasks: Sequence[Any], *, size: int | None = None,
               timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Run:
    """Each task a greenlet, at most `size` at once (None: all at once), in a thread of its own.

    Unpatched: waits overlap only when `fn` waits in gevent (``gevent.sleep``, gevent sockets).
    """
    check_callable("fn", fn)
    tasks = check_tasks(tasks)
    if size is not None:
        check_int("size", size, 1, MAX_CONCURRENCY)
    timeout = check_timeout("timeout", timeout)
    indexed = list(enumerate(tasks))
    started = time.perf_counter()
    values, failures, trace = _in_thread(
        "gevent", _gevent_thread(fn, indexed, size, "", time.monotonic() + timeout), timeout)
    seconds = time.perf_counter() - started
    width = size or len(tasks)
    return Run("gevent", f"gevent, {width} greenlets at once", [values.get(i) for i in
               range(len(tasks))], failures, seconds, trace, workers=width,
               details={"pids": [os.getpid()]})


def run_asyncio(fn: Callable[..., Any], tasks: Sequence[Any], *, size: int | None = None,
                timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Run:
    """Each task an asyncio task, at most `size` at once, in ``asyncio.run`` in a thread.

    A coroutine function runs as coroutines (one loop, one thread: waits overlap at each
    ``await``); a plain function runs through ``asyncio.to_thread``, on up to `size` threads
    (None: one per task, up to 256), which is threads under an event loop.
    """
    check_callable("fn", fn)
    tasks = check_tasks(tasks)
    if size is not None:
        check_int("size", size, 1, MAX_CONCURRENCY)
    timeout = check_timeout("timeout", timeout)
    native = inspect.iscoroutinefunction(fn)
    width = size or (len(tasks) if native else min(len(tasks), _MAX_TO_THREAD_WORKERS))

    def body(stop: threading.Event):
        return asyncio.run(_asyncio_main(fn, tasks, width, native, timeout, stop))

    started = time.perf_counter()
    values, failures, trace = _in_thread("asyncio", body, timeout)
    seconds = time.perf_counter() - started
    how = "coroutines" if native else "to_thread"
    return Run("asyncio", f"asyncio ({how}), {width} at once", values, failures, seconds, trace,
               workers=width, details={"pids": [os.getpid()], "mode": how})


async def _asyncio_main(fn, tasks, width, native, timeout, stop):
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    executor = None if native else ThreadPoolExecutor(width, thread_name_prefix="to_thread")
    if executor is not None:
        loop.set_default_executor(executor)
    gate = asyncio.Semaphore(width)
    slots, recorders = _Slots(), {}
    values: list[Any] = [None] * len(tasks)
    failures: dict[int, Failure] = {}

    def call_in_thread(index: int, args: tuple) -> None:
        start = time.perf_counter_ns()
        value = fn(*args)
        lane = f"{threading.current_thread().name}"
        return _record(recorders, lane, f"task {index}", start, value)

    async def one(index: int, args: tuple) -> None:
        async with gate:
            try:
                if native:
                    slot = slots.take()
                    try:
                        start = time.perf_counter_ns()
                        values[index] = _record(recorders, f"coroutine {slot}", f"task {index}",
                                                start, await fn(*args))
                    finally:
                        slots.give(slot)
                else:
                    values[index] = await asyncio.to_thread(call_in_thread, index, args)
            except Exception as exc:
                failures[index] = _failure(exc)

    async def watch() -> None:
        while not stop.is_set():
            await asyncio.sleep(_POLL_SECONDS)

    work = asyncio.gather(*(one(i, a) for i, a in enumerate(tasks)))
    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({work, watcher}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if work not in done:
            work.cancel()
            raise TimeoutError(f"asyncio tasks had not finished within {timeout:g} s")
        work.result()
    finally:
        watcher.cancel()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    trace = Trace()
    for recorder in list(recorders.values()):
        trace.extend(recorder.recording())
    return values, failures, trace


def _warm(seconds: float, module: str) -> int:
    """In a pool worker, before the clock starts: import gevent and the task's module (their
    imports are not the tasks' work), and stay long enough that every worker gets one of these."""
    import importlib

    import gevent.pool  # noqa: F401 - the import is the point

    importlib.import_module(module)
    time.sleep(seconds)
    return os.getpid()


def _gevent_chunk(fn: Callable[..., Any], indexed: list[tuple[int, tuple]], size: int | None,
                  timeout: float) -> tuple[dict, dict, Trace]:
    """In a pool worker: this chunk of tasks on a greenlet pool of its own (one pickle back)."""
    return _greenlet_pool(fn, indexed, size, f"worker {os.getpid()} ", time.monotonic() + timeout,
                          None)


def run_gevent_in_processes(fn: Callable[..., Any], tasks: Sequence[Any], *, workers: int = 2,
                            size: int | None = None, start_method: str | None = None,
                            timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Run:
    """Greenlets on every core: the tasks dealt round-robin to `workers` processes, each running
    its share on a gevent pool of `size` (None: all at once). `fn` must be a top-level function.

    The pool is started, and gevent and `fn`'s module imported in each worker, before the clock
    starts (that start is in ``details["pool_start_seconds"]``), as `run_pool` does.
    """
    check_callable("fn", fn)
    tasks = check_tasks(tasks, MAX_TASKS)
    check_int("workers", workers, 1, MAX_PROCESSES)
    if size is not None:
        check_int("size", size, 1, MAX_CONCURRENCY)
    timeout = check_timeout("timeout", timeout)
    workers = min(workers, len(tasks))
    chunks = [[(i, args) for i, args in enumerate(tasks) if i % workers == w]
              for w in range(workers)]
    created = time.perf_counter()
    with process_pool(workers, start_method) as pool:
        pool.starmap(_warm, [(0.02, fn.__module__)] * workers, chunksize=1)  # all up, first
        started = time.perf_counter()
        parts = pool.starmap_async(_gevent_chunk, [(fn, chunk, size, timeout) for chunk in chunks],
                                   chunksize=1).get(timeout + _STOP_SECONDS)
        seconds = time.perf_counter() - started
    values: list[Any] = [None] * len(tasks)
    failures: dict[int, Failure] = {}
    trace = Trace()
    for part_values, part_failures, part_trace in parts:
        for index, value in part_values.items():
            values[index] = value
        failures.update(part_failures)
        trace.extend(part_trace)
    width = size or max(len(c) for c in chunks)
    return Run("gevent-in-processes", f"gevent in {workers} processes, {width} greenlets each",
               values, failures, seconds, trace, workers=workers,
               details={"pool_start_seconds": started - created,
                        "pids": sorted(trace.clocks)})
