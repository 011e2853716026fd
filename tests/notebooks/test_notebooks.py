"""Execute every chapter notebook headless, in a fresh kernel, with the quick parameters.

A notebook fails on any error output, on anything written to stderr that a reader would see as a
warning or a traceback, and on anything it leaves behind: a file or folder in its temporary folder
(each kernel gets a private, empty ``TMPDIR``), a process still alive after its kernel shut down
(found by that private ``TMPDIR`` in its environment, orphans included), or an entry in
``/dev/shm`` that no process uses any more. The executed copy is kept in
``test-artifacts/notebooks/``: to look at, and for the book, which is built from these copies
instead of executing every notebook a second time.

``make test`` runs these beside the other untimed tests (pytest-xdist), so several notebooks
run at once: most of a quick run is waiting (kernel start-up, sleeps, servers and clients on one
machine). A chapter's speed-up demo may then see a busy machine and say so ("inconclusive"),
which is one of the things a notebook must say right; the figures themselves are asserted by the
chapters' unit tests, which run alone. Each kernel's leftovers are checked by what marks them as
its own (its private ``TMPDIR``, its semaphores' prefix), so a neighbour's cannot be blamed on it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from _leftovers import segments, unowned_new_segments

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "notebooks"
# Every notebook is held to the issues' bar for a whole notebook (60 s), doubled for a loaded CI
# machine and again because others run beside it.
_BUDGET_SECONDS = 60 * 2 * 2
_WARNING_WORDS = ("Traceback", "Warning", "Error", "warning:")
# The kernel is gone when execute() returns; the resource tracker it started unlinks what the
# kernel still held, and the pool workers it stopped exit, a moment later.
_GRACE_SECONDS = 3.0
# A cell's own timeout (nbclient); pytest-timeout bounds the whole notebook above it.
_CELL_TIMEOUT_SECONDS = 300


# The kernels' named semaphores carry this run's prefix (a process passes it on to every child
# it starts), so the leak check tells them from another program's on a shared machine, as the
# suite's own check does (tests/conftest.py). multiprocessing has no public setting for it.
_SEMAPHORE_PREFIX_STARTUP = (
    "import multiprocessing\n"
    "multiprocessing.current_process()._config['semprefix'] = '/{prefix}'\n")


def _semaphore_prefix(path: Path) -> str:
    return f"mp-nb{os.getpid()}-{path.stem[:3]}"


def _ours(names: list[str], prefix: str) -> list[str]:
    """Entries of /dev/shm this kernel made: its semaphores, and any segment left unowned."""
    return [n for n in names if not n.startswith("sem.") or n.startswith(f"sem.{prefix}")]


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

    work, ipython = base / "work", base / "ipython"
    # Short: a fork server's socket lives in it, and AF_UNIX paths stop at 107 bytes.
    private_tmp = Path(tempfile.mkdtemp(prefix="nb-"))
    startup = ipython / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-semaphore-prefix.py").write_text(
        _SEMAPHORE_PREFIX_STARTUP.format(prefix=_semaphore_prefix(path)))
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
    shutil.rmtree(private_tmp, ignore_errors=True)
    return _Executed(nb, seconds, left, left_behind)


# The budget bounds a notebook that hangs or crawls; it measures nothing a neighbour could skew.
@pytest.mark.untimed
@pytest.mark.timeout(_CELL_TIMEOUT_SECONDS * 2)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_clean(path: Path, tmp_path):
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    shm_before = segments()
    run = _execute(path, tmp_path)
    problems = _problems(run.nb)
    assert not problems, "\n".join(problems)
    assert not run.processes_left, (
        f"{path.name} left processes running after its kernel shut down (now killed): "
        f"{run.processes_left}")
    assert not run.left_in_tmp, f"{path.name} left in its temporary folder: {run.left_in_tmp}"
    prefix = _semaphore_prefix(path)
    leaked = _ours(unowned_new_segments(shm_before), prefix)
    if leaked:  # a finished pool's semaphores go when it is collected: give them a moment
        time.sleep(_GRACE_SECONDS)
        leaked = _ours(unowned_new_segments(shm_before), prefix)
    assert not leaked, f"{path.name} left in /dev/shm: {leaked}"
    assert run.seconds <= _BUDGET_SECONDS, (
        f"{path.name} took {run.seconds:.1f} s headless (budget {_BUDGET_SECONDS} s)")
    print(f"{path.name}: {run.seconds:.1f} s")
