"""The package's architecture, checked: layers import downwards only, no module imports another
that imports it back (however indirectly, wherever the import sits), no module reaches into
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
    """(imported module, names, line) for every import of a helpers module in `path`, at any
    depth (in a function too), read as the module named `here` (by default, the module the path
    is in the package)."""
    here = here or _dotted(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    top = here.split(".")[0]  # "helpers", or a probe package in the checker's own tests
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == top or target.startswith(top + "."):
                found.append((target, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(top + "."):
                    found.append((alias.name, [], node.lineno))
    return found


def _module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module under `root` (the folder of `package`), by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _loads_by_name(tree: ast.Module) -> bool:
    """Does the module call ``importlib.import_module`` (or ``__import__``) anywhere?"""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in ("import_module", "__import__"):
                return True
    return False


def _named_module(text: str, here: str, is_package: bool, known: dict[str, Path]) -> str | None:
    """The module a string names, if it names one: absolute (``"helpers.runners.dask"``),
    relative (``".views"``, as ``import_module(".views", __name__)`` reads it) or, in a package's
    ``__init__``, a bare submodule name (the lazy tables: ``{"Trace": "_events"}``)."""
    package = here if is_package else here.rsplit(".", 1)[0]
    if text.startswith("."):
        dots = len(text) - len(text.lstrip("."))
        base = package.split(".")
        candidate = ".".join(base[:len(base) - dots + 1] + [text[dots:]])
    elif "." in text:
        candidate = text
    else:
        candidate = f"{here}.{text}" if is_package else ""
    return candidate if candidate in known else None


def _import_graph(root: Path = ROOT, package: str = "helpers") -> dict[str, set[str]]:
    """module -> the modules it imports, read from the source: imports at the top *and* inside
    functions (a function-level import is still a loop, only a lazier one), and modules loaded by
    name (string literals naming a module, in a module that calls ``import_module``)."""
    known = _module_names(root, package)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for here, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        for target, names, _ in _imports(path, here):
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            graph[here].update(subs or ([target] if target in known else []))
            if subs and len(subs) < len(names):  # `from pkg import submodule, name`
                graph[here].add(target)
        if _loads_by_name(tree):
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    named = _named_module(node.value, here, is_package, known)
                    if named is not None:
                        graph[here].add(named)
        graph[here].discard(here)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted: every module
    of a group reaches every other through imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(start: str) -> None:  # iterative: the graph's depth must not meet the recursion limit
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(groups)


def _describe(group: list[str], graph: dict[str, set[str]]) -> str:
    edges = [f"    {a} -> {b}" for a in group for b in sorted(graph[a]) if b in group]
    return "a cycle of " + ", ".join(group) + ":\n" + "\n".join(edges)


def test_no_import_cycles():
    graph = _import_graph()
    cycles = _cycles(graph)
    assert not cycles, "\n".join(_describe(g, graph) for g in cycles)


def test_the_cycle_check_sees_function_level_and_by_name_imports(tmp_path):
    """The checker itself: a loop closed by an import inside a function, one closed by
    ``import_module`` with a module's name in a table, and one through a lazy package table are
    each found; imports that go one way only are not."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from .b import B\n",
        "b.py": "def f():\n    from .a import A\n",
        "c.py": "import importlib\n_TABLE = {'x': 'pkg.d'}\n"
                "def load(k):\n    return importlib.import_module(_TABLE[k])\n",
        "d.py": "from pkg.c import load\n",
        "e.py": "from .sub import thing\n",
        "sub/__init__.py": "import importlib\n_LAZY = {'thing': 'impl'}\n"
                           "def __getattr__(n):\n"
                           "    return importlib.import_module('.' + _LAZY[n], __name__)\n",
        "sub/impl.py": "from .. import e\n",
        "one_way.py": "from .a import A\nimport importlib\nimportlib.import_module('pkg.e')\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    groups = _cycles(_import_graph(root, "pkg"))
    assert groups == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"],
                      ["pkg.e", "pkg.sub", "pkg.sub.impl"]], groups


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
