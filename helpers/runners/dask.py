"""Run tasks on Dask's distributed scheduler, and draw what its workers did on the course timeline.

Data flow of `run_dask` (the kernel is the Dask *client*)::

    the kernel (Client)             scheduler (in the kernel for a       worker processes
                                    LocalCluster, or its own process)    (one lane per thread)
    -------------------             ---------------------------------    ---------------------
    client.submit(fn, *args) ──key──> decides which worker ─────────────> fn(*args) in a thread
      one Future per task             records each task's start/stop       result kept in the
    wait(futures, timeout)  <──────── "task finished" ─────────────────── worker's memory
    future.result()         <──────────────────────── the value, pickled, on request
    get_task_stream()       <──── every finished task: worker, thread, startstops (epoch s)
      └─> task_stream_trace(records, clocks) ──> Trace ──> plot_timeline(trace)

Dask times tasks with the wall clock (``time.time()``, epoch seconds); the course's spans use
``time.perf_counter_ns()``. Each worker process samples one ``(perf_counter_ns, time_ns)`` pair
(`helpers.timeline` calls it the clock pair), and `task_stream_trace` maps each epoch time onto
that worker's own perf counter, so Dask's spans line up with spans recorded anywhere else.

`start_cluster(LocalCluster, n, **options)` makes a cluster that nothing can leave running: it
is built with no workers while an interrupt is held back (a constructor interrupted half-way goes
on starting workers in Dask's loop thread, with no object left to close them), then scaled to `n`
inside the ``try`` whose ``finally`` closes it. `dask_client` is a `Client` on such a
`LocalCluster` of worker *processes* (scheduler and dashboard bound to 127.0.0.1): after an error
or a kernel interrupt no scheduler, nanny or worker process is left. Dask logs freely to stderr;
`quiet_dask` keeps its loggers at ERROR and its warnings out of the reader's cell.

Interrupts: Jupyter sends SIGINT to the kernel's whole process group. The worker processes are
started with SIGINT blocked (see `_interrupts_deferred`), so only the kernel is interrupted; the
block's ``except`` then has each nanny kill its worker at once (`_stop_workers_now`) instead of
waiting for the running tasks. The cell answers within about a second, with no traceback.

One thread stays once a cluster has run: ``Dask-Offload_0``, distributed's offload executor
(``distributed.utils._offload_executor``: a ``ThreadPoolExecutor(max_workers=1)`` made when
distributed is imported, its thread started on first use). It is one per process, not one per
cluster: every later cluster and client in the kernel reuses it, so shutting it down would break
them (a shut-down executor refuses new work), and Dask itself never does (``Worker.close`` skips
it: "Never shutdown the offload executor"). It holds no socket, file or process, waits idle on
its queue, and is joined when the interpreter exits. So it is left running, on purpose.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from helpers.course import LOOPBACK, check_callable, check_int, check_timeout
from helpers.timeline import Event, Trace

from .cleanup import stop_processes
from .contract import DEFAULT_TIMEOUT_SECONDS, check_tasks
from .run import Failure, Run

__all__ = [
    "MAX_DASK_WORKERS",
    "dask_client",
    "quiet_dask",
    "run_dask",
    "start_cluster",
    "task_stream_trace",
    "worker_clocks",
]

# A LocalCluster of more worker processes than this on one machine only shows oversubscription,
# which chapter 01 already does; it also bounds what a typo can start.
MAX_DASK_WORKERS = 16
# Threads per worker: a worker runs this many tasks at once; beyond it only the GIL shows.
_MAX_THREADS_PER_WORKER = 8
# Starting a LocalCluster of a few spawned worker processes takes 1-3 s on a laptop; a loaded
# machine may need several times that. Past this, the start is stuck and the reader gets an error.
_CLUSTER_START_SECONDS = 60.0
# How long asking a scheduler's address may take before it counts as not there (a local one
# answers in microseconds; a remote one over a slow link in well under this).
_PROBE_SECONDS = 5.0
# Closing waits this long for the workers to go; the nanny then kills what is left.
_CLOSE_SECONDS = 20.0
# After an interrupt or an error, a worker gets this long to exit before its nanny kills it: its
# running tasks' results are not wanted, and the reader waits for the cell to answer.
_STOP_NOW_SECONDS = 0.5
# Dask's loggers (and those of the libraries it drives) that write to stderr during a run.
_LOGGERS = ("distributed", "dask", "bokeh", "tornado", "asyncio")
# Task stream actions, as timeline kinds: computing, moving data between workers, spilling.
_ACTION_KINDS = {"compute": "run", "transfer": "send", "disk-read": "io", "disk-write": "io",
                 "deserialize": "send"}


@contextmanager
def quiet_dask(level: int = logging.ERROR) -> Iterator[None]:
    """Keep Dask's log lines and warnings out of the cell while the block runs.

    A killed worker, a slow start or a large task graph makes Dask log warnings to stderr; a
    chapter reports what happened itself, as data. Levels and filters are restored afterwards.
    """
    check_int("level", level, logging.NOTSET, logging.CRITICAL)
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, old in zip(loggers, before):
            logger.setLevel(old)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back a kernel interrupt while the block runs, and raise it as the block ends.

    A cluster's constructor interrupted half-way goes on starting in Dask's event-loop thread,
    with no object left to close it: so it is never interrupted, only followed by the interrupt.

    The block also runs with SIGINT blocked in this thread. The constructor starts Dask's
    event-loop thread, which inherits the mask, as do the threads it starts and the worker
    processes they spawn (a signal mask survives fork and exec). Jupyter interrupts a kernel by
    sending SIGINT to its whole process group: without the mask each worker process died of it
    mid-task, printed a nanny's traceback into the cell and left the closing to wait for its
    restart. With it, only the kernel sees the interrupt, and closing the cluster stops the
    workers (SIGTERM, then SIGKILL).

    multiprocessing's resource tracker is started first, from here: starting it from Dask's
    event-loop thread (a nanny's queue needs it) would unblock SIGINT there for good
    (``resource_tracker.ensure_running`` blocks SIGINT around its spawn, then unblocks it rather
    than restoring the mask it found), and every worker started after that would die of it again.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: nothing to hold back here
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # one per process, reused by every later start
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        # Unblocked while the recording handler is still in place: a SIGINT that was pending
        # is recorded, not raised half-way through this finally.
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt("interrupted while the cluster started")


def _stop_own_workers(before: set[int]) -> None:
    # A nanny interrupted while it started its worker may not have stopped it: the worker is a
    # multiprocessing child of this process, so stop it here.
    stop_processes([p for p in multiprocessing.active_children()
                    if p.pid not in before and "Dask" in (p.name or "")])


def _stop_workers_now(cluster: Any) -> None:
    """Have every nanny stop its worker process at once: SIGKILL after `_STOP_NOW_SECONDS`.

    A plain close asks each worker to finish its running tasks first (Dask cannot stop a task's
    thread) and gives it 5 s: an interrupted run of 3 s tasks answered after 4 s, its workers
    still computing. A nanny that closes is not restarting its worker, so what is left for the
    cluster's own close is the scheduler. Errors here are left to that close and to
    `_stop_own_workers`, which stop whatever this did not.
    """
    nannies = [w for w in getattr(cluster, "workers", {}).values() if hasattr(w, "close")]

    async def close_all() -> None:
        await asyncio.gather(*(n.close(timeout=_STOP_NOW_SECONDS) for n in nannies),
                             return_exceptions=True)

    try:
        cluster.sync(close_all, callback_timeout=_CLOSE_SECONDS)
    except Exception:  # noqa: BLE001 - the close that follows does the rest
        pass


@contextmanager
def start_cluster(cluster_class: Callable[..., Any], n_workers: int = 2, *,
                  timeout: float = _CLUSTER_START_SECONDS, **options: Any) -> Iterator[Any]:
    """``cluster_class(n_workers=n_workers, **options)``, closed when the block ends, however.

    For a chapter that writes the cluster out (``start_cluster(LocalCluster, 2,
    threads_per_worker=1, processes=True, host="127.0.0.1")``) and cannot leave a worker behind:
    the cluster is made with no workers while an interrupt is held back (so it is never half
    made), then scaled to `n_workers` inside the ``try`` whose ``finally`` closes it and stops any
    worker process a nanny left starting. The block begins once every worker has registered.
    """
    check_callable("cluster_class", cluster_class)
    check_int("n_workers", n_workers, 1, MAX_DASK_WORKERS)
    timeout = check_timeout("timeout", timeout)
    if "asynchronous" in options:
        raise ValueError("options must not hold asynchronous: the cluster is used from this "
                         "thread, as a notebook cell uses it")
    # The worker processes log to the kernel's stderr. Even at ERROR, a worker whose heartbeat
    # meets a scheduler that is closing first logs a traceback into the cell; what went wrong in
    # a run reaches the reader as data (a Failure, an exception), so only CRITICAL is let through.
    options.setdefault("silence_logs", logging.CRITICAL)
    # Workers keep spilled data and their lock files in a scratch folder; by default a shared
    # ``dask-scratch-space`` in the temporary folder that outlives the cluster. This one is the
    # cluster's own, and goes with it.
    import dask

    scratch = None
    if "local_directory" not in options:
        scratch = tempfile.mkdtemp(prefix="cc-dask-")
        options["local_directory"] = scratch
    before = {p.pid for p in multiprocessing.active_children()}
    try:
        # The scheduler (in this process) picks its folder from the configuration, not options.
        with dask.config.set({"temporary-directory": options["local_directory"]}), quiet_dask():
            with _interrupts_deferred():
                cluster = cluster_class(n_workers=0, timeout=timeout, **options)
            try:
                cluster.scale(n_workers)
                cluster.wait_for_workers(n_workers, timeout=timeout)
                yield cluster
            except BaseException:
                _stop_workers_now(cluster)  # an interrupt or an error: no result is wanted
                raise
            finally:
                try:
                    cluster.close(timeout=_CLOSE_SECONDS)
                finally:
                    _stop_own_workers(before)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def dask_client(workers: int = 2, threads_per_worker: int = 1, *,
                address: str | None = None,
                timeout: float = _CLUSTER_START_SECONDS) -> Iterator[Any]:
    """A `distributed.Client` on a fresh `LocalCluster` of `workers` processes (or on `address`).

    ``processes=True``: each worker is its own process with its own GIL, like a `Pool`'s workers,
    started by a *nanny* that restarts it if it dies. The scheduler, the workers and the
    dashboard listen on 127.0.0.1 only, the dashboard on a free port (``client.dashboard_link``).
    With `address` (``"tcp://127.0.0.1:8786"``) the client connects to a running scheduler
    instead, and closing it leaves that cluster running. The cluster is started by
    `start_cluster`, and client and cluster are closed whatever happens in the block.
    """
    check_int("workers", workers, 1, MAX_DASK_WORKERS)
    check_int("threads_per_worker", threads_per_worker, 1, _MAX_THREADS_PER_WORKER)
    timeout = check_timeout("timeout", timeout)
    if address is not None and (not isinstance(address, str) or "://" not in address):
        raise ValueError(f"address must be a scheduler address such as 'tcp://127.0.0.1:8786', "
                         f"got {address!r}")
    from distributed import Client, LocalCluster

    with quiet_dask():
        if address is not None:
            # A Client that cannot connect keeps its event-loop thread and sockets after it
            # raises: ask the address first, so nothing is made for a scheduler that is not there.
            _check_listening(address)
            with Client(address, timeout=timeout) as client:
                yield client
            return
        with start_cluster(LocalCluster, workers, threads_per_worker=threads_per_worker,
                           processes=True, host=LOOPBACK, dashboard_address=f"{LOOPBACK}:0",
                           scheduler_port=0, timeout=timeout) as cluster:
            client = Client(cluster, timeout=timeout)
            try:
                yield client
            finally:
                client.close(timeout=_CLOSE_SECONDS)


def _check_listening(address: str) -> None:
    """Raise OSError unless something accepts TCP connections at ``tcp://host:port``."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if parts.scheme != "tcp" or not host or not port:
        raise ValueError(f"address must be a scheduler address such as 'tcp://127.0.0.1:8786', "
                         f"got {address!r}")
    try:
        with socket.create_connection((host, port), timeout=_PROBE_SECONDS):
            pass
    except OSError as error:
        raise OSError(f"no Dask scheduler answers at {address}: {error}") from None


def _clock_pair() -> tuple[int, int, int]:
    """Run on a worker: its pid and its `helpers.timeline.clock_pair` (read at one instant)."""
    from helpers.timeline import clock_pair

    return (os.getpid(), *clock_pair())


def worker_clocks(client: Any) -> dict[str, tuple[int, int, int]]:
    """Each worker's address -> ``(pid, perf_counter_ns, time_ns)``, sampled in that worker."""
    return client.run(_clock_pair)


def _worker_lanes(records: Sequence[dict], names: dict[str, str] | None = None) -> dict:
    """``(worker address, thread id)`` -> a lane name, ``"<worker> thread k"``.

    Workers are numbered in the order of their addresses unless `names` (address -> name, e.g.
    the names the workers were started with) says otherwise; threads in order of first use.
    """
    names = dict(names or {})
    for number, address in enumerate(sorted({r["worker"] for r in records} - set(names)), 1):
        names[address] = f"worker {number}"
    lanes: dict[tuple[str, int], str] = {}
    threads: dict[str, list[int]] = {}
    for record in sorted(records, key=_first_start):
        address, thread = record["worker"], record.get("thread", 0)
        seen = threads.setdefault(address, [])
        if thread not in seen:
            seen.append(thread)
            lanes[(address, thread)] = f"{names[address]} thread {len(seen)}"
    return lanes


def _first_start(record: dict) -> float:
    return min((s["start"] for s in record.get("startstops", ())), default=0.0)


def task_stream_trace(records: Sequence[dict], clocks: dict[str, tuple[int, int, int]], *,
                      labels: dict[str, str] | None = None,
                      names: dict[str, str] | None = None) -> Trace:
    """Dask's task stream as a course `Trace`: one lane per worker thread.

    `records` come from ``get_task_stream``; `clocks` from `worker_clocks` (a worker missing
    there — one that has died since — is mapped with the kernel's own clock pair, exact on one
    machine). `labels` maps a task key to its label (default: the key).
    """
    local_pid, local_perf, local_epoch = _clock_pair()
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence) or not records or \
            not all(isinstance(r, dict) and "worker" in r for r in records):
        raise ValueError("records must be a non-empty list of task stream records (dicts with "
                         f"'worker', 'key' and 'startstops'), got {records!r:.80}")
    if not isinstance(clocks, dict):
        raise ValueError(f"clocks must be a dict from worker address to (pid, perf_counter_ns, "
                         f"time_ns), as worker_clocks returns, got {clocks!r:.80}")
    lanes = _worker_lanes(records, names)
    trace = Trace()
    for pid, perf, epoch in clocks.values():
        trace.clocks[pid] = (perf, epoch)
    trace.clocks.setdefault(local_pid, (local_perf, local_epoch))
    for record in records:
        address = record["worker"]
        pid, perf, epoch = clocks.get(address, (None, local_perf, local_epoch))
        lane = lanes[(address, record.get("thread", 0))]
        key = record["key"] if isinstance(record["key"], str) else str(record["key"])
        label = (labels or {}).get(key, key)
        for startstop in record.get("startstops", ()):
            kind = _ACTION_KINDS.get(startstop["action"], "run")
            start = perf + round(startstop["start"] * 1e9) - epoch
            end = max(start, perf + round(startstop["stop"] * 1e9) - epoch)
            if start >= 0:
                trace.add(Event(lane, label if kind == "run" else startstop["action"], kind,
                                start, end, pid))
    return trace


def _failure_of(future: Any) -> Failure:
    exc = future.exception(timeout=_CLOSE_SECONDS)
    try:
        import traceback

        text = "".join(traceback.format_tb(future.traceback(timeout=_CLOSE_SECONDS)))
    except Exception:  # the traceback may not travel (an unpicklable frame): the message does
        text = ""
    return Failure.from_exception(exc, text)


def run_dask(fn: Callable[..., Any], tasks: Sequence[Any], *, workers: int = 2,
             threads_per_worker: int = 1, client: Any = None,
             timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Run:
    """Run ``fn(*task)`` for each task as one Dask future, and record the task stream.

    Without `client`, a fresh `LocalCluster` of `workers` processes is started and closed around
    the run (its start is in ``details["cluster_start_seconds"]``, not in ``seconds``). With a
    `client`, its cluster is used as it is and left running. A task's exception is a `Failure`
    in ``run.failures``; every wait is bounded by `timeout`, after which the futures are
    cancelled and `TimeoutError` is raised. An interrupt cancels the futures too; a task already
    running keeps its worker thread until it returns (Dask cannot stop a running thread), so on a
    cluster of its own the run has the nannies kill the worker processes at once, then closes it.
    """
    check_callable("fn", fn)
    tasks = check_tasks(tasks)
    timeout = check_timeout("timeout", timeout)
    if client is None:
        started = time.perf_counter()
        with dask_client(workers, threads_per_worker) as own:
            own.wait_for_workers(workers, timeout=_CLUSTER_START_SECONDS)
            start_seconds = time.perf_counter() - started
            run = run_dask(fn, tasks, client=own, timeout=timeout)
        run.details["cluster_start_seconds"] = start_seconds
        return run

    from distributed import get_task_stream, wait

    name = getattr(fn, "__name__", "task")
    token = uuid.uuid4().hex[:8]
    keys = [f"{name}-{token}-{i}" for i in range(len(tasks))]
    labels = {key: f"task {i}" for i, key in enumerate(keys)}
    with quiet_dask():
        clocks = worker_clocks(client)
        futures: list[Any] = []
        try:
            # As a context manager: it starts recording before the first task is submitted
            # (`client.get_task_stream()` called only after the work can come back empty,
            # dask/distributed#9253).
            with get_task_stream(client) as stream:
                started = time.perf_counter()
                futures = [client.submit(fn, *args, key=key, pure=False)
                           for key, args in zip(keys, tasks)]
                try:
                    wait(futures, timeout=timeout)
                except asyncio.TimeoutError as exc:  # on 3.10 not yet the built-in TimeoutError
                    unfinished = sum(f.status != "finished" for f in futures)
                    raise TimeoutError(f"{unfinished} of {len(futures)} Dask tasks had not "
                                       f"finished within {timeout:g} s") from exc
                seconds = time.perf_counter() - started
                values: list[Any] = [None] * len(tasks)
                failures: dict[int, Failure] = {}
                for index, future in enumerate(futures):
                    if future.status == "finished":
                        values[index] = future.result(timeout=timeout)
                    else:
                        failures[index] = _failure_of(future)
        except BaseException:
            client.cancel(futures)
            raise
        finally:
            for future in futures:
                future.release()
        trace = task_stream_trace(stream.data, clocks, labels=labels)
    threads = sum(info.get("nthreads", 1)
                  for info in client.scheduler_info()["workers"].values())
    return Run("dask", f"Dask, {len(clocks)} workers", values, failures, seconds, trace,
               workers=len(clocks),
               details={"pids": sorted(pid for pid, _, _ in clocks.values()),
                        "threads": threads, "dashboard": client.dashboard_link})
