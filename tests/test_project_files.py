"""The project's own files agree with each other.

- environment.yml (conda) and pyproject.toml (pip) name the same packages, and constraints.txt pins
  each of them exactly;
- every chapter notebook is committed without outputs or execution counts (`make strip`);
- CI runs `make test`, the README tells a newcomer `make lab` and `make test`;
- the JupyterLab settings overrides name settings that the installed JupyterLab really has.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# conda-forge name -> PyPI name, where the two differ.
CONDA_TO_PIP = {
    "matplotlib-base": "matplotlib",  # matplotlib without a GUI toolkit: all a notebook needs
    "playwright-python": "playwright",
    "dask-core": "dask",  # dask without its optional extras; `dask` on conda-forge adds pandas etc.
}
# What environment.yml needs to be an environment at all, not a package of the course.
CONDA_ONLY = {"python", "pip"}
# An exact pin: name==version, then an optional environment marker.
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==[^\s;]+\s*(;.*)?$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def normalise(name: str) -> str:
    """PEP 503: case and runs of '-', '_', '.' don't matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    match = NAME.match(spec.strip())
    assert match, f"cannot read a package name from {spec!r}"
    return normalise(match.group())


def pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {requirement_name(spec) for spec in specs}


def conda_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert env["channels"] == ["conda-forge"], "environment.yml uses conda-forge only"
    names = set()
    for entry in env["dependencies"]:
        if isinstance(entry, dict):  # the `pip:` section holds PyPI names and `-e .`
            names |= {requirement_name(s) for s in entry.get("pip", []) if not s.startswith("-")}
            continue
        conda_name = normalise(re.split(r"[\s=<>!~]", entry.split("::")[-1], maxsplit=1)[0])
        if conda_name not in CONDA_ONLY:
            names.add(CONDA_TO_PIP.get(conda_name, conda_name))
    return names


def test_environment_yml_names_the_packages_of_pyproject():
    conda, pip = conda_packages(), pyproject_packages()
    assert conda == pip, (
        f"only in environment.yml: {sorted(conda - pip)}; only in pyproject.toml: "
        f"{sorted(pip - conda)} (a name that differs on conda-forge goes in CONDA_TO_PIP)"
    )


def test_environment_yml_installs_the_repo():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip_sections = [entry["pip"] for entry in env["dependencies"] if isinstance(entry, dict)]
    assert ["-e ."] in pip_sections


def test_constraints_pin_every_declared_package_exactly():
    pinned, loose = set(), []
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        if match:
            pinned.add(normalise(match["name"]))
        else:
            loose.append(line)
    assert not loose, f"constraints.txt lines that are not exact pins: {loose}"
    assert not pyproject_packages() - pinned, "declared but not pinned in constraints.txt"


def test_notebooks_are_committed_without_outputs():
    dirty = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for index, cell in enumerate(cells):
            if cell["cell_type"] == "code" and (cell["outputs"] or cell["execution_count"]):
                dirty.append(f"{path.name} cell {index}")
    assert not dirty, f"outputs or execution counts in {dirty}: run `make strip`"


def test_ci_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line.strip() for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert "make test" in commands


def test_readme_names_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make lab" in readme and "make test" in readme


def test_lab_overrides_turn_off_news_with_real_setting_names():
    overrides = json.loads((ROOT / "jupyter" / "overrides.json").read_text(encoding="utf-8"))
    plugin = "@jupyterlab/apputils-extension:notification"
    assert overrides[plugin] == {"fetchNews": "false", "checkForUpdates": False}
    package, name = plugin.split(":")
    schema_path = Path(sys.prefix, "share", "jupyter", "lab", "schemas", package, f"{name}.json")
    if not schema_path.is_file():
        pytest.skip(f"no JupyterLab schema at {schema_path}")
    properties = json.loads(schema_path.read_text(encoding="utf-8"))["properties"]
    fetch_choices = {choice["const"] for choice in properties["fetchNews"]["oneOf"]}
    assert overrides[plugin]["fetchNews"] in fetch_choices
    assert properties["checkForUpdates"]["type"] == "boolean"
