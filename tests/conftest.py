"""Fixtures for the whole suite.

- Every test must leave no child process and no ``/dev/shm`` segment behind: the `no_leftovers`
  fixture (autouse) compares before and after, gives stragglers a grace period to exit, then kills
  them and fails the test with what it found (segments are reported, not deleted). Browser tests
  (marker ``browser``) share one JupyterLab and one Chromium across the session and check for
  leftovers at its end instead.
- `start_method` runs a test once per start method this OS offers (fork, spawn, forkserver).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `helpers` even without the editable install (e.g. an IDE run)

from helpers.course import available_start_methods  # noqa: E402

# A child that exits after its test gets this long to do so before it counts as left behind: a
# joined pool's workers and a closed kernel take a few hundred ms to go on a loaded 2-core machine.
_GRACE_SECONDS = 3.0
_SHM = Path("/dev/shm")
# multiprocessing's own long-lived helpers: started once per interpreter on purpose, and reused.
_INFRASTRUCTURE = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")


def _children() -> dict[int, psutil.Process]:
    found = {}
    me = os.getpid()
    for child in psutil.Process(me).children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(child.cmdline())
            parent = child.ppid()
        except psutil.Error:
            continue
        # The fork server itself is infrastructure; the workers it forks share its command line
        # but are children of it, not of us, and they do count.
        if parent == me and any(name in cmdline for name in _INFRASTRUCTURE):
            continue
        found[child.pid] = child
    return found


def _segments() -> set[str]:
    return set(os.listdir(_SHM)) if _SHM.is_dir() else set()


@pytest.fixture(autouse=True)
def no_leftovers(request):
    if request.node.get_closest_marker("browser"):
        yield
        return
    children_before, segments_before = set(_children()), _segments()
    yield
    new = [p for pid, p in _children().items() if pid not in children_before]
    _, alive = psutil.wait_procs(new, timeout=_GRACE_SECONDS)
    described = []
    for proc in alive:
        try:
            described.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:120]}")
            proc.kill()
        except psutil.Error:
            pass
    leaked = sorted(_segments() - segments_before)
    if leaked:  # a finished pool's semaphores go when it is collected: give them a moment
        time.sleep(0.5)
        leaked = sorted(set(leaked) & _segments())
    # Reported, never deleted: on a shared machine a new entry may belong to another program.
    problems = []
    if described:
        problems.append("child processes left behind:\n  " + "\n  ".join(described))
    if leaked:
        problems.append(f"/dev/shm segments left behind: {leaked}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(params=available_start_methods())
def start_method(request) -> str:
    """Each start method this OS offers, one test run each."""
    return request.param
