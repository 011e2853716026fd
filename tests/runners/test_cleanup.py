"""The cleanup seam, under every start method: nothing survives a stop, a timeout or an interrupt,
and a renamed multiprocessing internal degrades to a warning, never to an exception."""

from __future__ import annotations

import os
import socketserver
import threading
import time
import warnings
from multiprocessing import shared_memory

import psutil
import pytest

from helpers.course import mp_context
from helpers.runners import (
    POOL_KINDS,
    cleanup,
    close_queue,
    interrupt_after,
    process_executor,
    release_semaphores,
    run_pool,
    stop_pool,
    stop_processes,
    stop_server,
    unlink_shared_memory,
)
from helpers.workloads import cpu_task, io_task

pytestmark = pytest.mark.timeout(120)


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def _zombies() -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True)
            if p.status() == psutil.STATUS_ZOMBIE]


def _sleeper(seconds: float) -> None:
    time.sleep(seconds)


@pytest.mark.parametrize("grace", [0, 0.0, 1e-9, 1e9, float("inf")])
def test_stop_processes_reaps_every_child_whatever_the_grace(start_method, grace):
    ctx = mp_context(start_method)
    procs = [ctx.Process(target=_sleeper, args=(30,)) for _ in range(2)]
    for p in procs:
        p.start()
    started = time.perf_counter()
    stop_processes(procs, grace=grace)
    assert time.perf_counter() - started < 20
    assert all(p.exitcode is not None for p in procs)
    assert not _zombies()


@pytest.mark.parametrize("grace", [float("nan"), "1", None, -1])
def test_stop_processes_rejects_a_grace_that_is_not_a_number(grace):
    if grace == -1:  # negative is clamped to 0: a valid "no grace"
        stop_processes([], grace=grace)
        return
    with pytest.raises(ValueError, match="grace"):
        stop_processes([], grace=grace)


@pytest.mark.parametrize("grace", [float("nan"), "1", None])
def test_stop_processes_called_wrongly_still_stops_the_children(start_method, grace):
    ctx = mp_context(start_method)
    process = ctx.Process(target=_sleeper, args=(30,))
    process.start()
    with pytest.raises(ValueError, match="grace"):
        stop_processes([process], grace=grace)
    assert process.exitcode is not None
    assert not _zombies()


@pytest.mark.parametrize("kind", POOL_KINDS)
def test_a_timeout_in_any_pool_kind_leaves_no_thread_process_or_semaphore(kind, start_method):
    threads_before = _threads()
    with pytest.raises(Exception) as raised:
        run_pool(io_task, [5.0] * 4, kind=kind, workers=2, start_method=start_method,
                 timeout=0.3)
    assert "TimeoutError" in type(raised.value).__name__ or \
        isinstance(raised.value, TimeoutError)
    left = _threads() - threads_before  # the seam joined them: no waiting here
    assert not left, f"{kind} left threads behind: {left}"
    assert not _zombies()


@pytest.mark.parametrize("kind", ["Executor.map", "Executor.submit", "Pool.map", "Pool.imap"])
def test_an_interrupt_in_a_pool_leaves_nothing_and_prints_nothing(kind, start_method, capfd):
    threads_before = _threads()
    dispatched = threading.Event()
    with pytest.raises(KeyboardInterrupt):
        with interrupt_after(0.2, counting_from=dispatched):
            run_pool(io_task, [5.0] * 4, kind=kind, workers=2, start_method=start_method,
                     on_dispatch=dispatched.set)
    assert not (_threads() - threads_before)  # the seam joined them: no waiting here
    err = capfd.readouterr().err
    assert "InvalidStateError" not in err and "Traceback" not in err, err


def test_executor_shutdown_after_success_joins_its_threads(start_method):
    threads_before = _threads()
    with process_executor(2, start_method) as executor:
        assert list(executor.map(cpu_task, [10, 20])) == [cpu_task(10), cpu_task(20)]
    assert not (_threads() - threads_before)


def test_stop_pool_and_release_semaphores_unlink_named_semaphores():
    ctx = mp_context("spawn")  # spawn: every lock is a named semaphore in /dev/shm
    pool = ctx.Pool(1)
    names = cleanup._semaphore_names(pool, 3)  # noqa: SLF001 - the seam's own helper
    files = {f"sem.{name.lstrip('/')}" for name in names}

    def on_disk() -> set[str]:
        return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()

    assert names and files <= on_disk(), "a spawn pool holds named semaphores in /dev/shm"
    stop_pool(pool)
    assert not files & on_disk()


def test_close_queue_drains_and_joins_its_feeder(start_method):
    """Items put a moment ago are still in the feeder's hands: they are drained all the same (no
    sleep first), and a large one half-written to the pipe does not keep the feeder blocked."""
    ctx = mp_context(start_method)
    # Many rounds: the feeder may hold the last item, off its buffer and not yet written, at the
    # very moment close_queue looks (on one core, often); it must be counted all the same.
    for _ in range(20):
        before = set(threading.enumerate())  # this queue's feeder only, not another test's
        queue = ctx.Queue()
        for i in range(100):
            queue.put(i)
        assert close_queue(queue) == 100
        assert not [t for t in set(threading.enumerate()) - before if t.is_alive()]
        release_semaphores(queue)
    bounded = ctx.Queue(maxsize=3)  # full: the mark waits for the drain to make room
    for i in range(3):
        bounded.put(i)
    assert close_queue(bounded) == 3
    release_semaphores(bounded)
    before = set(threading.enumerate())
    big = ctx.Queue()
    big.put(b"x" * (4 << 20))  # far more than a pipe holds: the feeder blocks in write()
    assert close_queue(big) == 1
    assert not [t for t in set(threading.enumerate()) - before if t.is_alive()]
    release_semaphores(big)


def test_unlink_shared_memory_is_safe_twice():
    block = shared_memory.SharedMemory(create=True, size=1024)
    listed = shared_memory.ShareableList([1, 2, 3])
    unlink_shared_memory(block, listed)
    unlink_shared_memory(block, listed)  # already gone: not an error
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=block.name)


def test_stop_server_never_waits_for_ever_on_a_socketserver_that_never_served():
    server = socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    started = time.perf_counter()
    stop_server(server, timeout=0.2)
    assert time.perf_counter() - started < 2
    assert server.socket.fileno() == -1


def test_stop_server_stops_a_serving_socketserver():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    stop_server(server, timeout=2)
    thread.join(2)
    assert not thread.is_alive()


def test_a_renamed_internal_degrades_to_a_warning(monkeypatch):
    from multiprocessing import util

    ctx = mp_context("spawn")
    queue = ctx.Queue()
    monkeypatch.delattr(util, "_finalizer_registry")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        release_semaphores(queue)  # must not raise
    assert any("_finalizer_registry" in str(w.message) for w in caught)
    monkeypatch.undo()
    release_semaphores(queue)


_SERVERS_SCRIPT = """
import multiprocessing, os, sys
from multiprocessing import forkserver, resource_tracker
from helpers.course import mp_context
from helpers.runners import stop_multiprocessing_servers
ctx = mp_context("forkserver")
p = ctx.Process(target=os.getpid); p.start(); p.join()
pids = [forkserver._forkserver._forkserver_pid, resource_tracker._resource_tracker._pid]
assert all(pids), pids
stop_multiprocessing_servers()
gone = [not os.path.exists(f"/proc/{pid}") for pid in pids]
p = ctx.Process(target=os.getpid); p.start(); p.join()  # and they start again when needed
print(gone, p.exitcode, forkserver._forkserver._forkserver_pid not in pids)
"""


def test_stop_multiprocessing_servers_ends_the_fork_server_and_the_tracker():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SERVERS_SCRIPT], capture_output=True,
                         text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.strip() == "[True, True] 0 True", out.stdout + out.stderr


def test_a_kernel_that_started_processes_shuts_down_at_once_and_leaves_no_folder(tmp_path):
    """Without the hook, ipykernel's SIGTERMs never end the resource tracker, the kernel manager
    kills the kernel after 5 s, and multiprocessing's pymp-* folder stays behind."""
    jupyter_client = pytest.importorskip("jupyter_client")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(env={**os.environ, "PYTHONPATH": root, "TMPDIR": str(tmp_path)})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(60)
        reply = client.execute_interactive(
            "import helpers.runners\nfrom helpers.course import mp_context\n"
            "p = mp_context('forkserver').Process(target=print)\np.start(); p.join(10)",
            timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
    process = manager.provisioner.process
    started = time.monotonic()
    manager.shutdown_kernel(now=False)
    assert process.returncode == 0, f"the kernel was killed ({process.returncode})"
    assert time.monotonic() - started < 4.5
    assert list(tmp_path.iterdir()) == []


_HOLDS_SEMAPHORES = """
import multiprocessing, multiprocessing.util, os, sys, time

def _slow_exec(path, args, passfds, delay=float(sys.argv[2])):
    # multiprocessing forks its resource tracker, then execs Python: on a busy machine the exec
    # can come late, and until it does the tracker shows this script's command line. This holds
    # the tracker in that window for `delay` seconds.
    pid = os.fork()
    if pid == 0:
        try:
            for fd in passfds:
                os.set_inheritable(fd, True)
            time.sleep(delay)
            os.execv(path, args)
        finally:
            os._exit(127)
    return pid

if __name__ == "__main__":
    # its own prefix: on a shared machine, other programs' semaphores come and go meanwhile
    multiprocessing.current_process()._config["semprefix"] = "/" + sys.argv[1]
    if float(sys.argv[2]):
        multiprocessing.util.spawnv_passfds = _slow_exec
    ctx = multiprocessing.get_context("spawn")
    queue, lock = ctx.Queue(), ctx.Lock()  # named semaphores, registered with the tracker
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("exec_delay", [0.0, 0.3])
def test_kill_process_group_lets_the_tracker_unlink_what_the_group_left(tmp_path, exec_delay):
    """Killing a whole group with one killpg takes its resource tracker too, and the named
    semaphores its processes made stay in /dev/shm for ever; kill_process_group spares the
    tracker until it has unlinked them, also when the group is killed before the tracker's
    exec (it then still shows its parent's command line: this failed on a busy machine)."""
    import subprocess
    import sys

    from _leftovers import segments, unowned_new_segments

    from helpers.runners import kill_process_group

    script = tmp_path / "holds.py"
    script.write_text(_HOLDS_SEMAPHORES)
    prefix = f"mp-held{os.getpid()}"

    def held(names) -> set[str]:
        return {n for n in names if n.startswith(f"sem.{prefix}")}

    before = segments()
    child = subprocess.Popen([sys.executable, str(script), prefix, str(exec_delay)],
                             stdout=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert len(held(segments() - before)) >= 3  # the queue's and the lock's semaphores
        kill_process_group(child.pid)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        child.stdout.close()
    assert held(unowned_new_segments(before)) == set()
    with pytest.raises(ValueError, match="pgid"):
        kill_process_group(1)
