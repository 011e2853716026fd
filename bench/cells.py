"""Every chapter as a reader runs it: every code cell at reader defaults, timed.

``python -m bench cells`` executes every notebook (each part of a chapter on its own) headless,
in a fresh kernel each, *without* ``CC_QUICK`` (so every cell uses the sizes a reader gets), and
times each code cell from the moment it is sent to the kernel to its reply::

    nbclient ──cell──> kernel (reader defaults) ──reply──> seconds per cell
        ──> cell_NN_slowest_seconds (bar ≤ 10 s: a demo a teacher can run live)
            notebook_NN_error_outputs (bar == 0), notebook_NN_reader_defaults_seconds
        ──> notebook_00b/05d_headless_seconds: the same at the test's parameters (bar ≤ 60 s)

Since the cells write their API out, the notebooks themselves are the faithful thing to time
(the chapters' own modules also time some demo functions, ``cell_01_*`` …, side by side with
their baselines). The reader's files of the exercises go to a temporary work folder, removed
afterwards, not to ``notebooks/work``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["measure"]

_NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
_CHAPTERS = tuple(p.stem for p in sorted(_NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb")))
# No cell of these chapters needs more than a few seconds at reader defaults; this only bounds
# a stuck one, which then shows as an error and a missed bar instead of a hung bench.
_CELL_TIMEOUT_SECONDS = 120
# Chapters whose whole headless run (test parameters) has a bar of its own: ≤ 60 s.
_HEADLESS_BAR = ("00b_threads", "05d_asyncio")


def _run(path: Path) -> tuple[list[tuple[int, float, str]], int, float]:
    """Execute one notebook: (index, seconds, first line) per code cell, error outputs, total."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    started: dict[int, float] = {}
    timings: list[tuple[int, float, str]] = []

    def on_start(cell, cell_index):
        started[cell_index] = time.perf_counter()

    def on_done(cell, cell_index, execute_reply):
        first = (cell.source.strip().splitlines() or [""])[0][:60]
        timings.append((cell_index, time.perf_counter() - started[cell_index], first))

    client = nbclient.NotebookClient(
        nb, timeout=_CELL_TIMEOUT_SECONDS, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=on_start, on_cell_executed=on_done)
    begun = time.perf_counter()
    client.execute()
    total = time.perf_counter() - begun
    errors = sum(output.get("output_type") == "error"
                 for cell in nb.cells for output in cell.get("outputs", []))
    return timings, errors, total


def measure(report) -> None:
    quick = os.environ.pop("CC_QUICK", None)  # the kernel inherits the environment
    work = tempfile.mkdtemp(prefix="cc-bench-work-")
    os.environ["CC_WORK"] = work
    try:
        for stem in _CHAPTERS:
            number = stem.split("_")[0]  # "06", "07a", "07b"
            timings, errors, total = _run(_NOTEBOOKS / f"{stem}.ipynb")
            index, slowest, first = max(timings, key=lambda t: t[1])
            report(f"cell_{number}_slowest_seconds", slowest,
                   f"s (reader defaults; cell {index}: {first})", "<= 10")
            report(f"notebook_{number}_error_outputs", errors, "errors", "== 0")
            report(f"notebook_{number}_reader_defaults_seconds", total,
                   f"s ({len(timings)} code cells)")
        # The threads and asyncio chapters' own bar: the whole notebook headless, at the test's
        # parameters (CC_QUICK=1, as tests/notebooks runs it), within a minute.
        os.environ["CC_QUICK"] = "1"
        for stem in _HEADLESS_BAR:
            number = stem.split("_")[0]
            timings, errors, total = _run(_NOTEBOOKS / f"{stem}.ipynb")
            report(f"notebook_{number}_headless_seconds", total,
                   f"s (test parameters, {errors} error outputs)", "<= 60")
        os.environ.pop("CC_QUICK", None)
    finally:
        os.environ.pop("CC_WORK", None)
        shutil.rmtree(work, ignore_errors=True)
        if quick is not None:
            os.environ["CC_QUICK"] = quick
