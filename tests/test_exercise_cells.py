"""Every exercise is laid out the same way in every notebook, so a reader learns it once:

- the answer and its check in one code cell (``answer = ...`` and ``check("NN.k", answer)``);
- one label for every solution: ``<summary>Solution (open it after you have tried)</summary>``;
- the reader's files in ``WORK = work_folder("chNN")``: never a fresh temporary folder per run,
  never a predictable path under /tmp that another user could plant a module in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
LABEL = "Solution (open it after you have tried)"


def _cells(path: Path) -> list[tuple[int, str, str]]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(i, c["cell_type"], "".join(c["source"])) for i, c in enumerate(cells)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_exercises_look_the_same_everywhere(path: Path):
    problems = []
    for index, kind, text in _cells(path):
        for label in re.findall(r"<summary>(.*?)</summary>", text):
            if label != LABEL:
                problems.append(f"cell {index}: solution labelled {label!r}, not {LABEL!r}")
        if kind != "code":
            continue
        answers = re.search(r"^answer\s*=", text, re.M)
        checks = re.search(r"^check\(", text, re.M)
        if bool(answers) != bool(checks):
            problems.append(f"cell {index}: the answer and its check belong in one cell")
        if "mkdtemp" in text or re.search(r"['\"]/tmp/", text):
            problems.append(f"cell {index}: the reader's files go to work_folder(...), not /tmp")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_notebook_with_written_files_keeps_them_in_its_work_folder(path: Path):
    cells = _cells(path)
    writes = [i for i, kind, text in cells if kind == "code" and text.startswith("%%writefile")]
    if not writes:
        pytest.skip("no %%writefile cell")
    uses_work = all(text.split("\n", 1)[0].split()[1].startswith("{WORK}")
                    for i, _, text in cells if i in writes)
    defines = any("work_folder(" in text for _, kind, text in cells if kind == "code")
    assert uses_work and defines, f"{path.name}: %%writefile cells must write to {{WORK}}/… " \
                                  "with WORK = work_folder('chNN')"


def test_every_chapter_has_a_panel_in_one_of_its_parts():
    """The parameter panel (ipywidgets) is how a class tweaks a demo live: every chapter has one,
    in at least one of its parts (the browser test moves a control of each and sees a redraw)."""
    chapters: dict[str, bool] = {}
    for path in NOTEBOOKS:
        number = path.stem[:2]
        has_panel = any("make_panel(" in text for _, kind, text in _cells(path) if kind == "code")
        chapters[number] = chapters.get(number, False) or has_panel
    assert all(chapters.values()), f"chapters without a panel: " \
                                   f"{[n for n, ok in chapters.items() if not ok]}"
