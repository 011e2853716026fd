"""run_patched: value and recording back from a patched child; the child's traceback on error;
timeout and KeyboardInterrupt kill the child (the autouse fixture also fails on any leftover)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import psutil
import pytest

from helpers.chapters.ch05_coroutines import (
    blocking_sleepers,
    fail,
    late_patch,
    patch_report,
    pool_sleepers,
)
from helpers.runners import PatchedChildError, PatchedTimeout, Run, run_patched

pytestmark = pytest.mark.timeout(90)


def _child_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _assert_gone(pid: int) -> None:
    if psutil.pid_exists(pid):
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"child {pid} still runs"


def test_patched_child_reports_value_and_recording():
    run = run_patched(patch_report, timeout=60)
    assert isinstance(run, Run) and run.details["patched"] and run.model == "patched"
    assert run.value["time.sleep"] and run.value["socket.socket"]
    assert not run.value["os.getpid"] and not run.value["math.sqrt"]
    assert run.details["pid"] != os.getpid()
    assert all(e.pid == run.details["pid"] for e in run.trace.events)
    assert run.values == [run.value] and not run.failures
    plain = run_patched(patch_report, patch=False, timeout=60)
    assert not any(plain.value.values())


def test_the_kernel_is_never_patched():
    from gevent import monkey

    run_patched(patch_report, timeout=60)
    assert not monkey.is_anything_patched()


def test_plain_sleep_becomes_concurrent_only_when_patched():
    durations = [0.3, 0.2, 0.1]
    patched = run_patched(blocking_sleepers, durations, timeout=60)
    plain = run_patched(blocking_sleepers, durations, patch=False, timeout=60)
    assert plain.value >= sum(durations) * 0.95  # one after another
    assert max(durations) * 0.95 <= patched.value < sum(durations) * 0.8  # all at once
    # the greenlet timeline shows it too: unpatched, no time in the hub while they sleep
    hub_idle = sum(e.duration_ns for e in plain.trace.events if e.kind == "idle")
    assert hub_idle < 0.1 * plain.value * 1e9


def test_reference_taken_before_patching_still_blocks():
    result = run_patched(late_patch, 0.1, 3, patch=False, timeout=60).value
    assert result["time.sleep is patched now"]
    assert not result["the early reference is gevent's sleep"]
    assert result["3 greenlets × early reference (s)"] >= 0.28  # one after another
    assert result["3 greenlets × time.sleep (s)"] < 0.25  # at once


def test_traced_result_recordings_are_merged():
    run = run_patched(pool_sleepers, 10, "fixed", 0.05, 5, timeout=60)
    assert run.value["ran"] == 10 and run.value["skipped"] == 0
    sleeps = [e for e in run.trace.events if e.kind == "io"]
    assert len(sleeps) == 10 and {e.lane for e in sleeps} == {f"task {i}" for i in range(10)}
    assert 0.08 <= run.value["seconds"] < 0.5  # two waves of 50 ms


def test_child_exception_carries_the_child_traceback():
    with pytest.raises(PatchedChildError) as caught:
        run_patched(fail, "the film is corrupt", 0.01, timeout=60)
    text = str(caught.value)
    assert "Traceback" in text and "ValueError: the film is corrupt" in text
    assert "in fail" in caught.value.child_traceback  # the child's frames, not the parent's


def test_timeout_kills_the_child_with_a_clear_error():
    before = _child_pids()
    started = time.perf_counter()
    with pytest.raises(PatchedTimeout, match=r"did not finish within 1 s.*killed") as caught:
        run_patched(blocking_sleepers, [5.0], timeout=1.0)
    assert time.perf_counter() - started < 4.0
    pid = int(re.search(r"pid (\d+)", str(caught.value)).group(1))
    _assert_gone(pid)
    assert _child_pids() <= before


def test_keyboard_interrupt_during_the_wait_kills_the_child():
    before = _child_pids()
    main = threading.main_thread().ident
    timer = threading.Timer(1.0, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    started = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_patched(blocking_sleepers, [10.0], timeout=30)
    finally:
        timer.cancel()
    assert time.perf_counter() - started < 5.0
    assert _child_pids() <= before


@pytest.mark.parametrize(
    ("fn", "kwargs", "message"),
    [
        (lambda: 1, {}, "top-level function of a helpers module"),
        (print, {}, "helpers module"),
        (patch_report, {"timeout": 0}, "timeout must be a number from 0.1 to 3600"),
    ],
)
def test_bad_calls_raise_value_error(fn, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_patched(fn, **kwargs)



def test_started_child_runs_beside_the_kernel_until_stopped():
    from helpers.runners import idle_until_stopped, start_patched, wait_for_stop

    child = start_patched(idle_until_stopped, ready_timeout=60)
    try:
        assert child.alive and child.ready["patched"] is True
        # The kernel does other work meanwhile, until the child has woken up a few times from
        # its idle waits (each tick is one sleep): counted, not guessed from a fixed sleep.
        process = psutil.Process(child.pid)
        woken = process.num_ctx_switches().voluntary
        deadline = time.monotonic() + 20
        while process.num_ctx_switches().voluntary < woken + 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.alive
    finally:
        run = child.stop(timeout=20)
    assert run.value["ticks"] > 0 and not child.alive
    _assert_gone(child.pid)
    assert wait_for_stop(0.01) is False  # outside a started child: just a bounded wait


def test_started_child_that_never_reports_ready_is_killed():
    from helpers.runners import PatchedTimeout, start_patched
    from helpers.workloads import io_task

    before = _child_pids()
    with pytest.raises(PatchedTimeout, match="report_ready"):
        start_patched(io_task, 30.0, ready_timeout=0.5)
    for pid in _child_pids() - before:
        _assert_gone(pid)


def test_idle_until_stopped_refuses_to_run_where_nothing_would_stop_it(monkeypatch):
    from helpers.runners import idle_until_stopped

    monkeypatch.delenv("CC_ISOLATED_STOP_FILE", raising=False)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="start_patched"):
        idle_until_stopped()
    assert time.monotonic() - started < 1.0


def test_a_child_that_cannot_start_leaves_no_folder(monkeypatch, tmp_path):
    """The child's folder is made before its process and removed by the same finalizer: a
    Popen that fails (too many open files, say) leaves nothing behind."""
    import errno
    import tempfile

    from helpers.runners import session

    def no_process(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(session.subprocess, "Popen", no_process)
    with pytest.raises(OSError, match="Too many open files"):
        run_patched(patch_report, timeout=30)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_child_has_no_result_and_a_dropped_one_is_killed():
    import gc

    from helpers.runners import idle_until_stopped, start_patched

    with start_patched(idle_until_stopped, ready_timeout=60) as child:
        child.kill()
        _assert_gone(child.pid)
        with pytest.raises(RuntimeError, match="was killed"):
            child.stop()
    # (leaving the block after a kill stops nothing and raises nothing)
    dropped = start_patched(idle_until_stopped, ready_timeout=60)
    pid, folder = dropped.pid, dropped._child.workdir
    del dropped
    gc.collect()
    _assert_gone(pid)
    assert not os.path.exists(folder)
