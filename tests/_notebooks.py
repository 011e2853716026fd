"""Reading the chapters' exercise solutions out of the notebooks, for the tests that run them.

A solution sits in a markdown cell as a collapsed ``<details>`` block holding one fenced
```` ```python ```` block, so Run All never runs it; the tests take it from there and put it
through its check, so a solution and its check cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def solution_code(notebook: str, marker: str) -> str:
    """The code of the first collapsed solution block in `notebook` that mentions `marker`."""
    cells = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "<details>" in text and marker in text:
            return text.split("```python\n", 1)[1].split("```", 1)[0]
    raise AssertionError(f"no solution block with {marker!r} in {notebook}")


def solution(notebook: str, marker: str, tmp_path: Path):
    """The answer a solution gives: the path of the module its ``%%writefile`` writes (into
    `tmp_path`), or, for code that sets one, the value of ``answer``."""
    body = solution_code(notebook, marker)
    if body.startswith("%%writefile"):
        first, rest = body.split("\n", 1)
        path = tmp_path / Path(first.split()[-1]).name
        path.write_text(rest, encoding="utf-8")
        return str(path)
    namespace: dict = {"check": lambda *a: None}
    exec(body, namespace)
    return namespace["answer"]
