"""Execute every chapter notebook headless, in a fresh kernel, with the quick parameters.

A notebook fails on any error output, on anything written to stderr that a reader would see as a
warning or a traceback, and on anything it leaves behind: a file or folder in its temporary folder
(the kernel gets a private, empty ``TMPDIR``) or an entry in ``/dev/shm`` that no process uses any
more. The executed copy is kept in ``test-artifacts/notebooks/`` to look at.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _leftovers import segments, unowned_new_segments

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "notebooks"
# The headless budget of each chapter with quick parameters (the issues' bars, with room for a
# loaded CI machine); a chapter not listed gets the default.
# Every part is held to the issues' bar for a whole notebook (60 s), doubled for a loaded CI
# machine; none has a budget of its own any more.
_BUDGET_SECONDS: dict[str, float] = {}
_DEFAULT_BUDGET_SECONDS = 60 * 2
_WARNING_WORDS = ("Traceback", "Warning", "Error", "warning:")
# The kernel is gone when execute() returns; the resource tracker it started unlinks what the
# kernel still held a moment later.
_SHM_GRACE_SECONDS = 1.0


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


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_clean(path: Path, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("CC_QUICK", "1")  # the kernel inherits it: small parameters
    # The kernel imports the helpers of this checkout (not another one installed in editable
    # mode), and the reader's files it writes go to a private folder the test removes.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("CC_WORK", str(tmp_path / "work"))
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    shm_before = segments()
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, ARTIFACTS / path.name)
    assert not _problems(nb), "\n".join(_problems(nb))
    left = sorted(p.name for p in private_tmp.iterdir())
    assert not left, f"{path.name} left in its temporary folder: {left}"
    leaked = unowned_new_segments(shm_before)
    if leaked:  # a finished pool's semaphores go when it is collected: give them a moment
        time.sleep(_SHM_GRACE_SECONDS)
        leaked = unowned_new_segments(shm_before)
    assert not leaked, f"{path.name} left in /dev/shm: {leaked}"
    budget = _BUDGET_SECONDS.get(path.stem, _DEFAULT_BUDGET_SECONDS)
    assert elapsed <= budget, f"{path.name} took {elapsed:.1f} s headless (budget {budget} s)"
    print(f"{path.name}: {elapsed:.1f} s")
