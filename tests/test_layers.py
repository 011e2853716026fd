"""The package's architecture, checked: layers import downwards only, no module reaches into
another's private names, and every public module's ``__all__`` names exist.

Layers, lowest first (a module may import its own layer and those below)::

    course                      switches, parameter checks, start methods, the machine
    timeline, workloads, widgets  the engine, the tasks, the panel
    runners                     how work runs (and the cleanup seam)
    chapters                    one place per chapter
    exercises                   the self-checks, which may run any chapter's code
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import helpers

ROOT = Path(helpers.__file__).resolve().parent
LAYERS = {"course": 0, "timeline": 1, "workloads": 1, "widgets": 1, "source": 1, "runners": 2,
          "chapters": 3,
          "exercises": 4}


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path: Path) -> str:
    parts = ["helpers", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(dotted: str) -> int | None:
    parts = dotted.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _imports(path: Path, here: str | None = None) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) for every import of a helpers module in `path`, read as
    the module named `here` (by default, the module the path is in the package)."""
    here = here or _dotted(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "helpers" or target.startswith("helpers."):
                found.append((target, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("helpers."):
                    found.append((alias.name, [], node.lineno))
    return found


def _upward_imports(path: Path, here: str | None = None) -> list[str]:
    here = here or _dotted(path)
    mine = _layer(here)
    wrong = []
    for target, _, line in _imports(path, here):
        theirs = _layer(target)
        if mine is not None and theirs is not None and theirs > mine:
            wrong.append(f"{here}:{line} imports {target} (layer {theirs} above {mine})")
    return wrong


def test_layers_import_downwards_only():
    wrong = [line for path in _modules() for line in _upward_imports(path)]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_names():
    wrong = []
    for path in _modules():
        for target, names, line in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                wrong.append(f"{_dotted(path)}:{line} imports {private} from {target}")
    assert not wrong, "\n".join(wrong)


def _public_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(helpers.__path__, "helpers.")
                  if not any(part.startswith("_") for part in info.name.split(".")[1:]))


@pytest.mark.parametrize("name", _public_modules())
def test_every_public_module_has_an_all_whose_names_exist(name):
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), (list, tuple)), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names {missing}, which it does not define"


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The checker itself: a runner importing a chapter, absolutely or relatively, is reported;
    the same runner importing the course is not."""
    probe = tmp_path / "probe.py"
    probe.write_text("from helpers.chapters import ch04_pools\n"
                     "from ..chapters import ch01_processes\n"
                     "from helpers.course import QUICK\n")
    wrong = _upward_imports(probe, "helpers.runners.probe")
    assert len(wrong) == 2 and all("helpers.chapters" in line for line in wrong), wrong
    assert _upward_imports(probe, "helpers.exercises.probe") == []
