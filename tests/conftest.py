"""Fixtures for the whole suite.

- Every test must leave no child process and no ``/dev/shm`` segment behind: the `no_leftovers`
  fixture (autouse) compares before and after, gives stragglers a grace period to exit, then kills
  them and fails the test with what it found (segments are reported, not deleted). Browser tests
  (marker ``browser``) share one JupyterLab and one Chromium across the session and check for
  leftovers at its end instead.
- The whole run gets a private, empty ``TMPDIR`` (every child, kernel and server inherits it).
  At the end, anything in it that is not pytest's own folder (``t``, tmp_path's) was left behind by
  the course (a ``pymp-*`` folder of a killed pool, a site's or Dask's scratch folder): the run
  fails and names it. The folder is removed afterwards either way.
- A test that measures time is marked ``timing`` (by hand, or found by what its source
  mentions); `make test` runs the others side by side, then these alone.
- `start_method` runs a test once per start method this OS offers (fork, spawn, forkserver).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `helpers` even without the editable install (e.g. an IDE run)
sys.path.insert(0, str(ROOT / "tests"))  # the shared test helpers (`_timing`), from any subfolder

from _leftovers import mapped_elsewhere, segments  # noqa: E402
from _timing import measure_contention  # noqa: E402

from helpers.course import available_start_methods  # noqa: E402

# A child that exits after its test gets this long to do so before it counts as left behind: a
# joined pool's workers and a closed kernel take a few hundred ms to go on a loaded 2-core machine.
_GRACE_SECONDS = 3.0
# multiprocessing's own long-lived helpers: started once per interpreter on purpose, and reused.
_INFRASTRUCTURE = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")
# Named semaphores made by this test run's processes carry this prefix (a process passes its
# config on to every child it starts, under fork, spawn and forkserver), so the leak check tells
# them from another program's on a shared machine. multiprocessing has no public setting for it.
_SEM_PREFIX = f"/mp-cc{os.getpid()}"
import multiprocessing  # noqa: E402
import multiprocessing.util  # noqa: E402

multiprocessing.current_process()._config["semprefix"] = _SEM_PREFIX


# After the last test, multiprocessing's resource trackers and the last kernels' finalizers still
# remove their folders for a moment; what is there after this long was left behind.
_TMPDIR_GRACE_SECONDS = 5.0
_PRIVATE_TMPDIR = pytest.StashKey[Path]()


# pytest's own folders (tmp_path) go in the private folder too, under this short name: a test
# that hands its tmp_path to a child as TMPDIR gives it room for a fork server's socket path
# (AF_UNIX paths stop at 107 bytes).
_BASETEMP = "t"


@pytest.hookimpl(tryfirst=True)  # before pytest reads --basetemp to make its tmp_path factory
def pytest_configure(config):
    """Point TMPDIR at a private, empty folder before any test (or child) uses it."""
    if hasattr(config, "workerinput"):
        return  # an xdist worker: it inherited the private folder from the run that started it
    private = Path(tempfile.mkdtemp(prefix="cc-run-"))
    os.environ["TMPDIR"] = str(private)
    tempfile.tempdir = None  # tempfile caches the folder it chose: make it look again
    if config.option.basetemp is None:
        config.option.basetemp = str(private / _BASETEMP)
    config.stash[_PRIVATE_TMPDIR] = private


def _own_multiprocessing_folder() -> str | None:
    """The ``pymp-*`` folder of this pytest process (its fork server's socket lives there):
    multiprocessing removes it at exit, after the session ends, so it is not a leftover."""
    folder = multiprocessing.current_process()._config.get("tempdir")
    return Path(folder).name if folder else None


def _left_in(private: Path) -> list[str]:
    own = _own_multiprocessing_folder()
    return sorted(p.name for p in private.iterdir()
                  if p.name not in (_BASETEMP, own) and not p.name.startswith("pytest-of-"))


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # the run that started the workers checks the folder once they have exited
    private = session.config.stash.get(_PRIVATE_TMPDIR, None)
    if private is None or not private.is_dir():
        return
    deadline = time.monotonic() + _TMPDIR_GRACE_SECONDS
    left = _left_in(private)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _left_in(private)
    # Only a run that went to its end can say the course left nothing (a -x or a deselection
    # would blame whatever the stopped test had not cleaned yet).
    if left and session.testscollected and not session.shouldstop and not session.shouldfail:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"the tests left in their private TMPDIR ({private}): {left}",
                                red=True, bold=True)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    own = _own_multiprocessing_folder()
    for entry in private.iterdir():
        if entry.name != own:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
    # The folder itself goes after multiprocessing's exit handler has removed this process's own
    # folder in it (that handler runs at priority -100; lower runs later).
    multiprocessing.util.Finalize(None, shutil.rmtree, args=(str(private),),
                                  kwargs={"ignore_errors": True}, exitpriority=-200)


# A test that measures time needs the machine to itself: it is marked `timing`, and `make test`
# runs those tests alone, after the others have run side by side (pytest-xdist). A test is
# marked by hand, or found here by what its source mentions (a speed-up, a throughput, a clock,
# the busy-machine check), so a new one cannot slip into the parallel run by being unmarked.
# `untimed` says a test only bounds a time against a hang, generously, and can run beside others.
# An interrupt delivered after a delay is timing too: what is in flight at that moment decides
# what the test sees. So is a test that puts a notebook's solution through its exercise check:
# most checks judge a run (an overlap, a speed-up, how late a timer fired).
_MEASURES_TIME = re.compile(
    r"skip_if_busy|\bbusy\(|others_cores|perf_counter|monotonic|speed|faster|slower|throughput"
    r"|ratio|overhead|elapsed|wall|beats|rps|per_second|scal|interrupt_after|interrupt_main|solution\("
    r"|seconds\W{0,3}[<>]|[<>]=?\s*[\w.\[\]\"']*seconds")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark every test that measures time `timing` (before ``-m`` selects by marks)."""
    sources: dict[object, str] = {}
    for item in items:
        function = getattr(item, "function", None)
        if function is None or item.get_closest_marker("timing") or item.get_closest_marker(
                "untimed"):
            continue
        if function not in sources:
            try:
                sources[function] = inspect.getsource(function)
            except (OSError, TypeError):
                sources[function] = ""
        if _MEASURES_TIME.search(sources[function]):
            item.add_marker(pytest.mark.timing)


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




@pytest.fixture(autouse=True)
def _contention_window():
    """Each test's speed-up verdicts judge the other programs' CPU use from its own start."""
    measure_contention()
    yield


@pytest.fixture(autouse=True)
def no_leftovers(request):
    if request.node.get_closest_marker("browser"):
        yield
        return
    children_before, segments_before = set(_children()), segments()
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
    leaked = sorted(segments() - segments_before)
    if leaked:  # a finished pool's semaphores go when it is collected: give them a moment
        time.sleep(0.5)
        leaked = sorted((set(leaked) & segments()) - mapped_elsewhere(set(leaked)))
    # A semaphore without this run's prefix was made by some other program: not ours to report.
    ours = f"sem.{_SEM_PREFIX[1:]}"
    leaked = [n for n in leaked if not n.startswith("sem.") or n.startswith(ours)]
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
