"""Which cells a chapter's panel needs: the panel's own cell and the cells defining the names it
uses (the parameters and the imports), found by reading the notebook, never by running it.

The headless test (tests/notebooks) runs every cell of every chapter; the browser test opens
that executed copy, checks JupyterLab renders every output, and then runs only what the live
panel needs, so no chapter is executed twice.
"""

from __future__ import annotations

import ast
import builtins
import json
from pathlib import Path

PANEL_CALL = "make_panel("
_BUILTINS = set(dir(builtins))


def _parse(source: str) -> ast.Module | None:
    # IPython's magics and shell escapes are not Python; a cell made of them defines nothing.
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _uses(tree: ast.Module) -> set[str]:
    return {n.id for n in ast.walk(tree)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - _BUILTINS


def _defines(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
    return found


def cells_for_panel(notebook: Path) -> list[int] | None:
    """Indices (among all cells) to run, in order, for the first panel; None without a panel."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    sources = {i: "".join(c["source"]) for i, c in enumerate(cells) if c["cell_type"] == "code"}
    panel = next((i for i, s in sources.items() if PANEL_CALL in s), None)
    if panel is None:
        return None
    trees = {i: _parse(s) for i, s in sources.items()}
    needed, todo = {panel}, [panel]
    while todo:
        cell = todo.pop()
        tree = trees[cell]
        for name in sorted(_uses(tree) if tree else ()):
            # the last cell above that defines the name is the one whose value the panel sees
            definer = next((j for j in sorted(sources, reverse=True)
                            if j < cell and trees[j] and name in _defines(trees[j])), None)
            if definer is not None and definer not in needed:
                needed.add(definer)
                todo.append(definer)
    return sorted(needed)
