"""The code a chapter teaches is on its page.

Where a pattern is the lesson, a notebook either writes the API out in the cell or shows the exact
source of the course function that runs it (``show_source(fn)`` or ``inspect.getsource(fn)``), in
that cell or one above it. Helpers may hide only what is not the lesson: timing, recording, drawing,
cleanup, parameter panels, tables and facts about the machine. So, for every notebook:

- every chapter function or class a code cell uses (calls, or hands to a runner) is either
  plumbing, or has its source shown at or above that cell;
- what is shown fits a screen (`_MAX_SHOWN_LINES` per object): a dump of a long module teaches no
  more than a hidden one;
- at least 9 of 10 demo cells of the whole course show the code they run.

Plumbing is, by layer, everything outside ``helpers.chapters`` (the course switches, the timeline,
the widgets, the runners, the workloads, the self-checks, `show_source` itself), and inside a
chapter the names its package lists in ``__plumbing__`` (views, tables, panels), plus ``plot_*``
and ``make_panel``. Those lists are short and reviewed: a lesson never goes on them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
# About a screenful: the most lines one shown function or class may have.
_MAX_SHOWN_LINES = 50
# The share of demo cells, over the whole course, that must show the code they run.
_TARGET_SHARE = 0.9
# Cells that may use a chapter function without showing it, with the reason; keep it short.
_NOT_SHOWN: dict[tuple[str, str], str] = {}
_PLUMBING_LAYERS = ("helpers.course", "helpers.timeline", "helpers.widgets", "helpers.runners",
                    "helpers.workloads", "helpers.exercises", "helpers.source")


@dataclass
class _Use:
    cell: int
    name: str
    obj: object


@dataclass
class _Page:
    demo_cells: list[int] = field(default_factory=list)
    uses: list[_Use] = field(default_factory=list)
    shown: dict[int, int] = field(default_factory=dict)  # id(obj) -> first cell that shows it
    shown_objects: list[tuple[int, str, object]] = field(default_factory=list)


def _code(cell: dict) -> str | None:
    """A code cell's Python, without IPython's magics; None for a %%writefile cell (the reader's
    own module, shown whole by definition)."""
    text = "".join(cell["source"])
    if text.lstrip().startswith("%%"):
        return None
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in text.splitlines())


def _is_lesson(module: str, name: str, obj: object) -> bool:
    """A chapter function or class that is not declared plumbing."""
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return False
    defined = getattr(obj, "__module__", "") or ""
    if not defined.startswith("helpers.") or defined.startswith(_PLUMBING_LAYERS):
        return False
    if not defined.startswith("helpers.chapters."):
        return False
    if name.startswith("plot_") or name == "make_panel":
        return False
    package = importlib.import_module(".".join(defined.split(".")[:3]))
    return name not in getattr(package, "__plumbing__", ())


def _read(path: Path) -> _Page:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    names: dict[str, tuple[str, object]] = {}  # local name -> (name, object)
    modules: dict[str, object] = {}  # local name -> a helpers module
    page = _Page()
    first_code = True
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        code = _code(cell)
        if code is None:
            continue
        tree = ast.parse(code)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers"):
                source = importlib.import_module(node.module)
                for alias in node.names:
                    obj = getattr(source, alias.name, None)
                    if obj is None:  # a submodule not yet imported by its package
                        obj = importlib.import_module(f"{node.module}.{alias.name}")
                    local = alias.asname or alias.name
                    if inspect.ismodule(obj):
                        modules[local] = obj
                    else:
                        names[local] = (alias.name, obj)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("helpers") and alias.asname:
                        modules[alias.asname] = importlib.import_module(alias.name)

        def resolve(node: ast.AST) -> tuple[str, object] | None:
            if isinstance(node, ast.Name) and node.id in names:
                return names[node.id]
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules):
                obj = getattr(modules[node.value.id], node.attr, None)
                return (node.attr, obj) if obj is not None else None
            return None

        uses_here = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                shows = (isinstance(func, ast.Name) and func.id == "show_source") or (
                    isinstance(func, ast.Attribute) and func.attr == "getsource")
                if shows:
                    for arg in node.args:
                        found = resolve(arg)
                        if found is not None:
                            page.shown.setdefault(id(found[1]), index)
                            page.shown_objects.append((index, *found))
            if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
                found = resolve(node)
                if found is not None:
                    uses_here.append(_Use(index, *found))
        imports_only = all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in tree.body)
        calls = any(isinstance(n, ast.Call) for n in ast.walk(tree))
        exercise_or_panel = "check(" in code or "make_panel(" in code
        if not first_code and calls and not imports_only and not exercise_or_panel:
            page.demo_cells.append(index)
        first_code = False
        page.uses.extend(u for u in uses_here if _is_lesson("", u.name, u.obj))
    return page


_PAGES = {path.stem: _read(path) for path in NOTEBOOKS}


def _unshown(stem: str) -> list[_Use]:
    page = _PAGES[stem]
    return [u for u in page.uses
            if page.shown.get(id(u.obj), 10**9) > u.cell and (stem, u.name) not in _NOT_SHOWN]


@pytest.mark.parametrize("stem", sorted(_PAGES))
def test_every_chapter_function_a_notebook_uses_is_shown(stem: str):
    missing = _unshown(stem)
    assert not missing, (
        f"{stem}: these chapter functions are used without their source shown at or above the "
        "cell (show_source(fn) there, write the API out in the cell, or, for a view, add it to "
        "its package's __plumbing__):\n" + "\n".join(
            f"  cell {u.cell}: {u.name} ({u.obj.__module__})" for u in missing))


@pytest.mark.parametrize("stem", sorted(_PAGES))
def test_shown_code_fits_a_screen(stem: str):
    too_long = []
    for cell, name, obj in _PAGES[stem].shown_objects:
        lines = len(inspect.getsource(obj).splitlines())
        if lines > _MAX_SHOWN_LINES:
            too_long.append(f"  cell {cell}: {name} has {lines} lines")
    assert not too_long, (f"{stem}: shown code longer than {_MAX_SHOWN_LINES} lines (make the "
                          "lesson's part its own short function):\n" + "\n".join(too_long))


def test_nine_in_ten_demo_cells_show_their_code():
    total = showing = 0
    for page in _PAGES.values():
        hidden_cells = {u.cell for u in page.uses
                        if page.shown.get(id(u.obj), 10**9) > u.cell}
        total += len(page.demo_cells)
        showing += sum(1 for c in page.demo_cells if c not in hidden_cells)
    assert total > 0
    assert showing / total >= _TARGET_SHARE, (
        f"{showing} of {total} demo cells show the code they run ({showing / total:.0%}; "
        f"the bar is {_TARGET_SHARE:.0%})")


def test_the_reader_of_pages_sees_hidden_uses(tmp_path):
    """The checker itself: a cell that calls a chapter function unshown is found, and showing it
    in a cell above clears it."""
    def notebook(*sources):
        cells = [{"cell_type": "code", "source": s, "metadata": {}, "outputs": [],
                  "execution_count": None} for s in sources]
        path = tmp_path / "99_probe.ipynb"
        path.write_text(json.dumps({"cells": cells}), encoding="utf-8")
        return _read(path)

    hidden = notebook("N = 1", "from helpers.chapters.ch04_pools import exception_in_task",
                      "exception_in_task()")
    assert [u.name for u in hidden.uses] == ["exception_in_task"]
    assert hidden.shown == {}
    shown = notebook("N = 1", "from helpers.chapters.ch04_pools import exception_in_task\n"
                     "from helpers.source import show_source",
                     "show_source(exception_in_task)", "exception_in_task()")
    assert shown.shown and min(shown.shown.values()) == 2
    assert hidden.demo_cells == [2]
