"""Run the benchmarks: ``python -m bench [module ...]``. See the package docstring."""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
import time
from pathlib import Path

import bench

# Foundation figures first, then the chapters in course order.
_ORDER = ["foundation", "processes", "pools", "coroutines"]


def _modules(requested: list[str]) -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")]
    if requested:
        unknown = sorted(set(requested) - set(found))
        if unknown:
            raise SystemExit(f"unknown bench module(s) {unknown}; known: {sorted(found)}")
        found = requested
    return sorted(found, key=lambda name: (_ORDER.index(name) if name in _ORDER else 99, name))


def main(argv: list[str]) -> int:
    results: list[dict] = []

    def report(name: str, value: float, unit: str, bar: str | None = None) -> None:
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        line = f"bench {name}: {shown} {unit}"
        if bar:
            line += f" (bar {bar})"
        print(line, flush=True)
        results.append({"name": name, "value": value, "unit": unit, "bar": bar})

    started = time.perf_counter()
    for name in _modules(argv):
        importlib.import_module(f"bench.{name}").measure(report)
    Path("bench-results.json").write_text(json.dumps({
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seconds": round(time.perf_counter() - started, 1),
        "figures": results,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
