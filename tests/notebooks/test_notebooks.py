"""Execute every chapter notebook headless, in a fresh kernel, with the quick parameters.

A notebook fails on any error output, on anything written to stderr that a reader would see as a
warning or a traceback, and on anything it leaves behind: a file or folder in its temporary folder
(each kernel gets a private, empty ``TMPDIR``), a process still alive after its kernel shut down
(found by that private ``TMPDIR`` in its environment, orphans included), or an entry in
``/dev/shm`` that no process uses any more. The executed copy is kept in
``test-artifacts/notebooks/``: to look at, and for the book, which is built from these copies
instead of executing every notebook a second time.

    module fixture ──▶ a pool of `CC_NOTEBOOK_JOBS` threads (default 2)
                          │  each: nbclient ─▶ its own kernel (env: CC_QUICK=1, PYTHONPATH,
                          │                    CC_WORK and TMPDIR private to the notebook)
                          ▼
    test_notebook_runs_clean[<stem>] waits for its notebook's result, then asserts on it

Notebooks run side by side because most of a quick run is waiting (kernel start-up, sleeps,
servers and clients on one machine): two at a time take about half the time on two cores. A
chapter's speed-up demo then sees a busy machine and says so ("inconclusive"), which is one of
the things a notebook must say right; the figures themselves are tested by the chapters' unit
tests, which run alone. ``CC_NOTEBOOK_JOBS=1`` runs them one at a time.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from _leftovers import segments, unowned_new_segments

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "notebooks"
# Every notebook is held to the issues' bar for a whole notebook (60 s), doubled for a loaded CI
# machine and again because two run side by side.
_BUDGET_SECONDS = 60 * 2 * 2
_WARNING_WORDS = ("Traceback", "Warning", "Error", "warning:")
# The kernel is gone when execute() returns; the resource tracker it started unlinks what the
# kernel still held, and the pool workers it stopped exit, a moment later.
_GRACE_SECONDS = 3.0
# Two notebooks at a time: the measured sweet spot on two cores (three gain little more and
# make each chapter's demos slower than a reader's run by more than the budget allows).
_JOBS = max(1, int(os.environ.get("CC_NOTEBOOK_JOBS", "2")))
# A notebook's own cell timeout (nbclient) and the wait for its result; pytest-timeout is above.
_CELL_TIMEOUT_SECONDS = 300
_WAIT_SECONDS = 900

# These notebooks run in a thread pool, not in the test: the suite-wide per-test leftover check
# would see the other notebooks' kernels come and go. Each result carries its own checks instead.
pytestmark = [pytest.mark.own_leftover_check, pytest.mark.timeout(_WAIT_SECONDS + 60)]


# The kernels' named semaphores carry this run's prefix (a process passes it on to every child
# it starts), so the leak check tells them from another program's on a shared machine, as the
# suite's own check does (tests/conftest.py). multiprocessing has no public setting for it.
_SEMAPHORE_PREFIX = f"mp-ccnb{os.getpid()}"
_SEMAPHORE_PREFIX_STARTUP = (
    "import multiprocessing\n"
    f"multiprocessing.current_process()._config['semprefix'] = '/{_SEMAPHORE_PREFIX}'\n")


def _ours(names: list[str]) -> list[str]:
    """Entries of /dev/shm this run's kernels made: their semaphores, and any segment."""
    mine = f"sem.{_SEMAPHORE_PREFIX}"
    return [n for n in names if not n.startswith("sem.") or n.startswith(mine)]


@dataclass
class _Executed:
    nb: object
    seconds: float
    left_in_tmp: list[str] = field(default_factory=list)
    processes_left: list[str] = field(default_factory=list)


def _problems(nb) -> list[str]:
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}")
            elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = output.get("text", "")
                if any(word in text for word in _WARNING_WORDS):
                    found.append(f"cell {index} wrote to stderr: {text[:300]}")
    return found


def _processes_with(tmpdir: str) -> list[psutil.Process]:
    """Processes whose environment says TMPDIR=`tmpdir`: the kernel's descendants, orphans too."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("TMPDIR") == tmpdir:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _execute(path: Path, base: Path) -> _Executed:
    import nbclient
    import nbformat

    work, private_tmp, ipython = base / "work", base / "tmp", base / "ipython"
    private_tmp.mkdir(parents=True)
    startup = ipython / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-semaphore-prefix.py").write_text(_SEMAPHORE_PREFIX_STARTUP)
    # The kernel imports the helpers of this checkout (not another one installed in editable
    # mode), and the reader's files it writes go to a private folder the test removes.
    env = {**os.environ, "CC_QUICK": "1", "PYTHONPATH": str(ROOT), "CC_WORK": str(work),
           "TMPDIR": str(private_tmp), "IPYTHONDIR": str(ipython)}
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=_CELL_TIMEOUT_SECONDS, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, ARTIFACTS / path.name)
    _, alive = psutil.wait_procs(_processes_with(str(private_tmp)), timeout=_GRACE_SECONDS)
    left_behind = []
    for proc in alive:
        try:
            left_behind.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:120]}")
            proc.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + _GRACE_SECONDS
    left = sorted(p.name for p in private_tmp.iterdir())
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = sorted(p.name for p in private_tmp.iterdir())
    return _Executed(nb, seconds, left, left_behind)


@pytest.fixture(scope="module")
def executions(request, tmp_path_factory):
    """Start every selected notebook now, `_JOBS` at a time; each test waits for its own."""
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    selected = [item.callspec.params["path"] for item in request.session.items
                if item.originalname == "test_notebook_runs_clean"]
    shm_before = segments()
    pool = ThreadPoolExecutor(max_workers=_JOBS, thread_name_prefix="notebook")
    futures: dict[Path, Future] = {
        path: pool.submit(_execute, path, tmp_path_factory.mktemp(path.stem))
        for path in selected}
    yield futures
    for future in futures.values():
        future.cancel()
    pool.shutdown(wait=True)
    # Segments are judged once no notebook runs: while one does, another's pool is still alive.
    leaked = _ours(unowned_new_segments(shm_before))
    if leaked:
        time.sleep(_GRACE_SECONDS)
        leaked = _ours(unowned_new_segments(shm_before))
    assert not leaked, f"the notebooks left in /dev/shm: {leaked}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_clean(path: Path, executions):
    run: _Executed = executions[path].result(timeout=_WAIT_SECONDS)
    problems = _problems(run.nb)
    assert not problems, "\n".join(problems)
    assert not run.processes_left, (
        f"{path.name} left processes running after its kernel shut down (now killed): "
        f"{run.processes_left}")
    assert not run.left_in_tmp, f"{path.name} left in its temporary folder: {run.left_in_tmp}"
    assert run.seconds <= _BUDGET_SECONDS, (
        f"{path.name} took {run.seconds:.1f} s headless (budget {_BUDGET_SECONDS} s)")
    print(f"{path.name}: {run.seconds:.1f} s")
