"""The cleanup seam: everything a demo must do so that it leaves nothing behind.

Every runner and every chapter demo ends through these functions, in a ``finally``::

    demo ──starts──> processes, pools, executors, queues, semaphores, shared memory, servers
      │
      └─ finally ──> stop_processes(procs)         terminate → join(grace) → kill → reap
                     stop_pool(pool)               terminate the workers, join, reap, unlink sems
                     stop_executor(executor)       cancel, terminate workers, join its threads
                     close_queue(q)                drain, close, join the feeder thread
                     release_semaphores(*owners)   unlink named semaphores now, not at GC time
                     unlink_shared_memory(*blocks) close + unlink, once, whoever made them
                     stop_server(server)           stop accepting, close the socket
                     kill_process_group(pgid)      SIGKILL a child's whole group, sparing the
                                                   resource trackers, which clean up after it
    and for a demo that shows a Queue's insides: queue_parts(q)   its pipe ends, locks, feeder
    and in every worker: ignore_sigint()           the kernel's interrupt reaches the parent only
    and when the kernel shuts down: stop_multiprocessing_servers()   the fork server and the
                     resource tracker, asked to exit (see `stop_at_kernel_shutdown`)

Some of this needs multiprocessing internals that have no public API (a pool's worker list, an
executor's processes before Python 3.14, the finalizer registry that owns a semaphore's name).
They are reached only here, each through `_private`, which turns a renamed attribute in a future
Python into one `RuntimeWarning` and a best-effort cleanup — never an exception that would mask
the real error of the ``finally`` it runs in. tests/runners/test_cleanup.py checks every access on
each Python the lock supports, under fork, spawn and forkserver.
"""

from __future__ import annotations

import math
import queue as queue_module
import signal
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "TERMINATE_GRACE_SECONDS",
    "close_queue",
    "ignore_sigint",
    "kill_process_group",
    "queue_parts",
    "release_semaphores",
    "stop_at_kernel_shutdown",
    "stop_executor",
    "stop_multiprocessing_servers",
    "stop_pool",
    "stop_processes",
    "stop_server",
    "unlink_shared_memory",
]

# terminate() sends SIGTERM; a process gets this long to go before it is sent SIGKILL. A worker
# of the course exits in milliseconds; a second covers a loaded 2-core machine.
TERMINATE_GRACE_SECONDS = 1.0
# The most a caller may ask to wait per process: a longer grace only delays a stuck demo.
_MAX_GRACE_SECONDS = 60.0
# After SIGKILL a process is gone once the kernel reaps it; this bounds the final join.
_REAP_SECONDS = 5.0
# A queue's feeder thread flushes what was put; it gets this long before we stop waiting for it.
# It is done in milliseconds; a 2-core machine running four test processes once took over 1 s.
_FEEDER_JOIN_SECONDS = 3.0
# The largest process id Linux hands out (pid_max can be raised to 2**22, no further).
_MAX_PID = 2**22
# A resource tracker whose owners were killed unlinks what they left and exits at once, in
# milliseconds; with four test processes on two cores it once needed over 2 s. Waiting costs
# nothing when it is quick, and killing it early leaves its semaphores in /dev/shm for good.
_TRACKER_EXIT_SECONDS = 5.0
# A process forked a moment ago may not have exec'd yet: until it does it shows its parent's
# command line, and while it does an empty one. A resource tracker being started (multiprocessing
# forks it, then execs Python) would be taken for a member and killed, its semaphores left for
# good (both seen on a busy machine). A process that young and that unnamed is looked at again,
# for at most this long.
_EXEC_SETTLE_SECONDS = 1.0
_SETTLE_POLL_SECONDS = 0.02
# While draining, how long one read waits for an item the feeder is still writing.
_DRAIN_POLL_SECONDS = 0.05
# How deep `release_semaphores` looks inside an owner (a Pool holds queues that hold locks).
_SEMAPHORE_SEARCH_DEPTH = 3
_MISSING = object()


def _private(owner: Any, name: str, default: Any = None) -> Any:
    """``getattr(owner, name)`` for an internal attribute, degrading to a warning if it is gone."""
    value = getattr(owner, name, _MISSING)
    if value is _MISSING:
        warnings.warn(f"{type(owner).__module__}.{type(owner).__name__} has no attribute {name!r} "
                      f"in this Python; cleanup falls back to the public API", RuntimeWarning,
                      stacklevel=3)
        return default
    return value


def ignore_sigint() -> None:
    """Worker initializer: a kernel interrupt signals the whole process group; the parent decides.

    Without it each worker dies of its own KeyboardInterrupt and prints a traceback into the cell.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _grace(grace: object, name: str = "grace") -> float:
    """A usable grace period whatever was passed: never NaN, infinite, negative or huge."""
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or math.isnan(grace):
        raise ValueError(f"{name} must be a number of seconds from 0 to {_MAX_GRACE_SECONDS:g}, "
                         f"got {grace!r}")
    return min(max(float(grace), 0.0), _MAX_GRACE_SECONDS)


def stop_processes(processes: Sequence[Any], grace: float = TERMINATE_GRACE_SECONDS) -> None:
    """Terminate, then kill, then reap every process still alive: nothing is left, not a zombie.

    Works on `multiprocessing.Process` objects of any start method. `grace` (0–60 s) is how long
    each may take to exit after SIGTERM before SIGKILL; the final reap always waits for the kill.
    """
    if isinstance(processes, (str, bytes)) or not isinstance(processes, Iterable):
        raise TypeError(f"processes must be a list of multiprocessing processes, got "
                        f"{type(processes).__name__}")
    processes = list(processes)
    if not all(hasattr(p, "terminate") and hasattr(p, "join") for p in processes):
        raise TypeError("processes must hold multiprocessing.Process objects only")
    try:
        grace = _grace(grace)
    except ValueError:
        # A cleanup function never leaves a process behind, even when called wrongly: stop them
        # with the default grace, then say what was wrong.
        _stop(processes, TERMINATE_GRACE_SECONDS)
        raise
    _stop(processes, grace)


def _stop(processes: list[Any], grace: float) -> None:
    started = [p for p in processes if getattr(p, "pid", None) is not None]
    for process in started:
        if process.exitcode is None:
            try:
                process.terminate()
            except (OSError, ValueError):  # already gone, or closed
                pass
    for process in started:
        try:
            process.join(grace)
            if process.exitcode is None:
                process.kill()
                process.join(_REAP_SECONDS)  # SIGKILL cannot be ignored: this returns
        except (OSError, ValueError, AssertionError):  # closed, or not our child
            pass


def stop_pool(pool: Any) -> None:
    """Terminate a `multiprocessing.Pool`, join it, reap its workers and unlink its semaphores."""
    workers = list(_private(pool, "_pool", []) or [])
    try:
        pool.terminate()  # stops the workers and the pool's threads
        pool.join()
    finally:
        stop_processes(workers)  # normally gone already; guarantees nothing is left if not
        release_semaphores(pool)


def stop_executor(executor: Any, *, kill: bool = True) -> None:
    """Shut a `ProcessPoolExecutor` down without waiting on a stuck worker.

    Pending futures are cancelled first, so the executor's manager thread sees a clean shutdown
    (killing workers under a live manager makes it fail with ``InvalidStateError`` printed into
    the cell); then the workers are terminated (Python 3.14's ``terminate_workers``, or the
    processes themselves before it), the manager thread and the call queue's feeder thread are
    joined, and the queues' semaphores unlinked: nothing of it outlives the call.
    """
    # shutdown() drops its references to the workers, threads and queues: take them first.
    processes = list((_private(executor, "_processes", {}) or {}).values())
    manager = _private(executor, "_executor_manager_thread")
    queues = [q for q in (getattr(executor, "_call_queue", None),
                          getattr(executor, "_result_queue", None)) if q is not None]
    try:
        if kill:
            executor.shutdown(wait=False, cancel_futures=True)
            terminate = getattr(executor, "terminate_workers", None)  # Python 3.14+
            if terminate is not None:
                try:
                    terminate()
                except Exception:  # already shut down: the processes are stopped below
                    pass
            stop_processes(processes)
        else:
            executor.shutdown(wait=True, cancel_futures=True)
    finally:
        stop_processes(processes)
        if manager is not None:
            manager.join(_REAP_SECONDS)  # it exits once every worker is gone
        for queue in queues:
            close_queue(queue, drain=False)
        release_semaphores(executor, *queues)


def close_queue(queue: Any, *, drain: bool = True) -> int:
    """Drain (optionally), close and join the feeder thread of a `multiprocessing.Queue`.

    Returns how many items were drained. A queue whose feeder still holds data for a reader that
    is gone would otherwise keep its thread, and a process joining it, waiting for ever.
    """
    drained = _drain_through_a_mark(queue) if drain else 0
    try:
        queue.close()
    except (OSError, ValueError, AttributeError):
        pass
    cancel = getattr(queue, "cancel_join_thread", None)
    thread = getattr(queue, "_thread", None)  # the feeder; None if nothing was ever put
    if thread is not None:
        thread.join(_FEEDER_JOIN_SECONDS)
        if thread.is_alive() and cancel is not None:
            cancel()  # its data has no reader: do not let interpreter exit wait for it
    elif hasattr(queue, "_notempty"):  # a Queue never put to: no feeder will close its pipe
        for end in ("_reader", "_writer"):  # (close() leaves both to garbage collection, which
            connection = _private(queue, end)  # a traceback holding the queue puts off)
            if connection is not None:
                connection.close()
    return drained


# What a `multiprocessing.Queue` is made of, by CPython's names: the two ends of its pipe, its
# reader and writer locks, the semaphore that counts free places, and its feeder thread.
_QUEUE_PARTS = ("_reader", "_writer", "_rlock", "_wlock", "_sem", "_thread")


def queue_parts(queue: Any) -> dict[str, Any]:
    """The internal parts of a `multiprocessing.Queue`, by CPython's names: ``_reader`` and
    ``_writer`` (the ends of its pipe), ``_rlock``, ``_wlock``, ``_sem`` and ``_thread`` (the
    feeder; None before the first put). For chapters that show or wait on them; a part this
    Python does not have is left out, with a `RuntimeWarning`, never an exception."""
    parts = {name: _private(queue, name, _MISSING) for name in _QUEUE_PARTS}
    return {name: value for name, value in parts.items() if value is not _MISSING}


def _drain_through_a_mark(queue: Any) -> int:
    """Read every item put before now; return how many.

    An item may still be on its way: put() returned, but the feeder thread has not written it yet
    -- it may even have taken it off its buffer and be pickling it, which nothing outside the
    thread can see. So a mark is put behind everything, and reading goes on until the mark comes
    out of the pipe: one feeder writes in order, so by then every earlier item has been read.
    Bounded in time (a feeder blocked on a full pipe is released only by reading, and another
    reader may take the mark).
    """
    if getattr(queue, "_thread", None) is None:
        # Never put to from here: nothing is in flight from this process, and a mark would start
        # a feeder thread only to close a pipe that close_queue closes itself.
        return _drain_what_is_there(queue)
    mark = f"cc-close-queue-mark-{time.monotonic_ns()}-{id(queue)}"
    drained, marked = 0, False
    deadline = time.monotonic() + _FEEDER_JOIN_SECONDS
    while time.monotonic() < deadline:
        if not marked:
            try:
                queue.put_nowait(mark)
                marked = True
            except queue_module.Full:
                pass  # a bounded queue at its size: reading below makes room
            except (ValueError, AssertionError, OSError, AttributeError):
                return drained + _drain_what_is_there(queue)  # closed, or no Queue
        try:
            item = queue.get(timeout=_DRAIN_POLL_SECONDS)
        except queue_module.Empty:
            continue
        except (OSError, ValueError, EOFError):
            break
        if isinstance(item, str) and item == mark:
            break
        drained += 1
    return drained


def _drain_what_is_there(queue: Any) -> int:
    """Read what the pipe and the feeder hold now, for a queue no mark can be put in."""
    drained = 0
    deadline = time.monotonic() + _FEEDER_JOIN_SECONDS
    while True:
        try:
            queue.get(timeout=_DRAIN_POLL_SECONDS if _feeding(queue) else 0)
            drained += 1
        except queue_module.Empty:
            if not _feeding(queue) or time.monotonic() >= deadline:
                return drained
        except (OSError, ValueError, EOFError, AttributeError):
            return drained


def _feeding(queue: Any) -> bool:
    """Whether the queue's feeder thread still holds items it has not written to the pipe."""
    thread = getattr(queue, "_thread", None)
    buffer = getattr(queue, "_buffer", None)
    return thread is not None and thread.is_alive() and bool(buffer)


def release_semaphores(*owners: Any) -> None:
    """Unlink now the named semaphores of finished queues, events, locks and pools.

    Under spawn and forkserver every lock of a `Queue`, `Event` or `Pool` is a named POSIX
    semaphore (``/dev/shm/sem.mp-…``) that a new child opens by name. multiprocessing unlinks it
    when the Python object is garbage-collected, which for a pool (full of reference cycles) is
    some time later. Once no new process will need the name — every worker stopped — unlinking at
    once leaves nothing behind; processes that still hold the semaphore keep working.
    """
    names: set[str] = set()
    for owner in owners:
        names |= _semaphore_names(owner, _SEMAPHORE_SEARCH_DEPTH)
    if not names:
        return
    from multiprocessing import resource_tracker, util
    from multiprocessing.synchronize import SemLock

    registry = _private(util, "_finalizer_registry", {}) or {}
    cleanup = _private(SemLock, "_cleanup")
    for finalizer in list(registry.values()):
        args = getattr(finalizer, "_args", None) or ()
        if cleanup is None or getattr(finalizer, "_callback", None) is not cleanup or \
                not args or args[0] not in names:
            continue
        try:
            finalizer()  # unlinks, unregisters from the resource tracker, never runs again
        except OSError:  # already unlinked by someone else: still tell the tracker
            try:
                resource_tracker.unregister(args[0], "semaphore")
            except Exception:
                pass


def _semaphore_names(owner: Any, depth: int) -> set[str]:
    from multiprocessing.synchronize import SemLock

    if isinstance(owner, SemLock):
        name = getattr(getattr(owner, "_semlock", None), "name", None)  # None under fork
        return {name} if name else set()
    found: set[str] = set()
    if depth == 0 or not hasattr(owner, "__dict__"):
        return found
    for value in vars(owner).values():
        if type(value).__module__.startswith(("multiprocessing", "concurrent")):
            found |= _semaphore_names(value, depth - 1)
    return found


def unlink_shared_memory(*blocks: Any) -> None:
    """Close and unlink `multiprocessing.shared_memory` blocks (`SharedMemory`, `ShareableList`).

    The process that made a block decides when it goes: unlink once, after every user closed it.
    Closing twice or unlinking a block already gone is not an error here, so this is safe in any
    ``finally``; a block left linked would outlive the kernel in ``/dev/shm`` and the resource
    tracker would warn about it at exit.
    """
    for block in blocks:
        shm = getattr(block, "shm", block)  # a ShareableList carries its SharedMemory as .shm
        try:
            shm.close()
        except (OSError, BufferError, ValueError):
            pass  # a numpy view still exported: the unlink below still removes the name
        try:
            shm.unlink()
        except FileNotFoundError:
            pass


def stop_server(server: Any, timeout: float = TERMINATE_GRACE_SECONDS) -> None:
    """Stop a server object (gevent ``StreamServer``, ``socketserver`` server) and close its socket.

    ``stop(timeout)`` for gevent servers; for socketserver ones the stop request ``shutdown()``
    makes, waited for at most `timeout` seconds (``shutdown`` itself has no timeout), then
    ``server_close()``.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
            not 0 <= timeout <= _MAX_GRACE_SECONDS:  # NaN fails both comparisons
        raise ValueError(f"timeout must be a number of seconds from 0 to "
                         f"{_MAX_GRACE_SECONDS:g}, got {timeout!r}")
    if not (hasattr(server, "stop") or hasattr(server, "server_close")):
        raise TypeError(f"server must be a gevent server (with stop) or a socketserver server "
                        f"(with server_close), got {server!r}")
    stop = getattr(server, "stop", None)
    if stop is not None:
        stop(timeout=timeout)
        return
    if hasattr(server, "serve_forever"):
        # shutdown() would wait, without a timeout, for a serve_forever that may never have run:
        # ask for the stop the same way, and wait for it a bounded time.
        stopped = _private(server, "_BaseServer__is_shut_down")
        server._BaseServer__shutdown_request = True
        if stopped is not None:
            stopped.wait(timeout)
    close = getattr(server, "server_close", None)
    if close is not None:
        close()


def stop_multiprocessing_servers() -> None:
    """Ask this process's fork server and resource tracker to exit, and wait for them.

    Both are started once, on first use, and live until their parent closes its end of a pipe.
    Stopped this way, the tracker first unlinks whatever a crashed child left registered, and
    the fork server's socket is removed; a later process start simply starts them again.
    """
    from multiprocessing import forkserver, resource_tracker

    for owner, name in ((forkserver, "_forkserver"), (resource_tracker, "_resource_tracker")):
        server = _private(owner, name)
        stop = _private(server, "_stop") if server is not None else None
        if stop is None:
            continue
        try:
            stop()
        except (OSError, ChildProcessError, ValueError):  # already gone
            pass


def stop_at_kernel_shutdown() -> bool:
    """In a Jupyter kernel, stop the fork server and resource tracker before it shuts down.

    On a shutdown request ipykernel terminates its children with SIGTERM, then SIGKILL, backing
    off for up to 14 s; the resource tracker ignores SIGTERM, so the kernel manager loses
    patience after 5 s and kills the kernel itself: no exit handler runs, multiprocessing's
    temporary folder (``pymp-*``) stays behind, and every shutdown or restart takes 5 s. Asking
    both helpers to exit first lets the kernel end at once and cleanly. Returns True if the
    hook is in place (idempotent); False outside a kernel.
    """
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    if getattr(kernel, "_cc_stops_multiprocessing", False):
        return True
    for table_name in ("control_handlers", "shell_handlers"):
        table = getattr(kernel, table_name, None)
        original = table.get("shutdown_request") if isinstance(table, dict) else None
        if original is not None:
            table["shutdown_request"] = _stopping_first(original)
    kernel._cc_stops_multiprocessing = True
    return True


def _run_exit_finalizers() -> None:
    """Do now what multiprocessing does at exit: close the queues and pools and unlink the named
    semaphores of the objects still alive (a notebook's ``q = ctx.Queue()``).

    The resource tracker, stopped next, would otherwise find those semaphores still registered:
    it unlinks them too, but prints "There appear to be N leaked semaphore objects" into the
    terminal of the reader's JupyterLab, for a notebook that leaked nothing.
    """
    import multiprocessing.util

    run = _private(multiprocessing.util, "_run_finalizers")
    if run is not None:
        run(0)  # the finalizers with an exit priority, as at interpreter exit


def _stopping_first(original):
    import inspect

    async def shutdown_request(*args, **kwargs):
        try:
            _run_exit_finalizers()
            stop_multiprocessing_servers()
        except Exception:  # never stand in the way of a shutdown
            pass
        result = original(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    return shutdown_request


def kill_process_group(pgid: int) -> None:
    """SIGKILL every process of group `pgid` (a child started in a session of its own), and wait.

    multiprocessing's resource trackers in the group are spared at first: a tracker notices that
    every process that held its pipe is gone, unlinks the named semaphores and shared memory they
    left registered, and exits. Killed with the rest, it would leave those in ``/dev/shm`` for
    good (three semaphores per killed pool, seen piling up by the dozen). Whatever of the group
    is still there after `_TRACKER_EXIT_SECONDS` is killed too.
    """
    import os

    import psutil

    if isinstance(pgid, bool) or not isinstance(pgid, int) or not 1 < pgid <= _MAX_PID:
        raise ValueError(f"pgid must be the process group id of a child (an int from 2 to "
                         f"{_MAX_PID}), got {pgid!r}")
    deadline = time.monotonic() + _EXEC_SETTLE_SECONDS
    members, trackers, unsettled = _group_members(pgid)
    while unsettled and time.monotonic() < deadline:
        time.sleep(_SETTLE_POLL_SECONDS)
        members, trackers, unsettled = _group_members(pgid)
    for process in members:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(members, timeout=_REAP_SECONDS)
    psutil.wait_procs(trackers, timeout=_TRACKER_EXIT_SECONDS)
    try:
        os.killpg(pgid, signal.SIGKILL)  # anything left, a stuck tracker included
    except (ProcessLookupError, PermissionError):
        pass


def _group_members(pgid: int) -> tuple[list, list, bool]:
    """Group `pgid`'s processes as (members, resource trackers, whether one may be mid-exec)."""
    import os

    import psutil

    members, trackers, unsettled = [], [], False
    now = time.time()
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) != pgid:
                continue
            cmdline = process.cmdline()
            if "resource_tracker" in " ".join(cmdline):
                trackers.append(process)
                continue
            members.append(process)
            if (not unsettled and now - process.create_time() < _EXEC_SETTLE_SECONDS
                    and process.status() != psutil.STATUS_ZOMBIE):
                # mid-exec: its parent's command line before, an empty one while it changes
                unsettled = not cmdline or cmdline == process.parent().cmdline()
        except (OSError, AttributeError, psutil.Error):
            continue  # gone meanwhile (or its parent is)
    return members, trackers, unsettled
