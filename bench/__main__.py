"""Run the benchmarks and check every bar: ``python -m bench [module ...] [--output PATH]``.

Data flow (see the package docstring for the module protocol)::

    (before each module: gc.collect(), gc.freeze() — what earlier modules left is not walked)
    bench/<module>.py  measure(report) ──> report(name, value, unit, bar, baseline=…)
                                              │ parse_bar(bar) → Bar; Bar.check(value),
                                              │ Bar.margin(value): how far, and which way
                                              ▼
    one line per figure as it comes:   bench pool_speedup_2_workers: 1.93 x serial  >= 1.85  ok
    load average sampled all along ──> idle or busy (mean load vs usable cores, and how much
    CPU went to work outside the bench)
    at the end: the table of every figure (with each bar's margin), bench-results.json (every
    figure, and under "bars" each bar's figure, value, bar, margin, met and baseline), the exit code

A bar's margin says how much room the figure left: a ratio (the figure over a `>=` bar, the bar
over the figure for `<=`; above 1 is room to spare, below 1 the factor it missed by) where the
bar and the figure are positive, else a difference (figure − bar for `>=`, bar − figure for `<=`,
the distance to the nearer end of a range; positive is room). An `==` bar's margin is
−|figure − bar|: 0 when met. The baseline is what the figure was measured against in the same run
(a serial run, a bare pool, an untraced run), or None for an absolute bar (seconds, a count).

Exit code: 1 when a bar was missed (or a module raised) on an idle machine; 0 when every bar was
met, or when the machine was busy (the load average over the run reached the usable core count,
and at least `FOREIGN_BUSY_CORES` of CPU went to other programs: the figures then say more about
the neighbours than about the code). 2 for an unknown module. The second condition is there
because the load average counts the bench's own processes and threads too: the idle-memory
figure of chapter 07 alone holds 10,000 threads, and must not excuse a missed bar.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import numbers
import os
import pkgutil
import platform
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from helpers.course import physical_cores, usable_cores

__all__ = [
    "ORDER",
    "Bar",
    "Figure",
    "Margin",
    "LoadMonitor",
    "cpu_seconds",
    "discover",
    "machine_facts",
    "main",
    "order_modules",
    "parse_bar",
    "run_bench",
]

# The course's modules first (foundation, then the chapters in course order), then any other
# module alphabetically.
ORDER = ("foundation", "threads", "processes", "pools", "coroutines", "asyncio_tasks",
         "asyncio_chapter", "ipc", "locks", "crawler", "socket_server", "choosing", "dask", "cells")
OK, MISSED, NO_BAR = "ok", "MISSED", "-"
# How often the load average is read while the modules run: the 1-minute average moves slowly,
# so a sample every few seconds follows it closely and costs nothing.
LOAD_SAMPLE_SECONDS = 5.0
DEFAULT_OUTPUT = "bench-results.json"
# Other programs' CPU (cores' worth, averaged over the run) from which a high load average counts
# as a busy machine: half a core taken from a 2-core run shifts its ratios visibly.
FOREIGN_BUSY_CORES = 0.5

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = re.compile(rf"^(>=|<=|==|!=|>|<|≥|≤)\s*({_NUMBER})$")
_RANGE = re.compile(rf"^({_NUMBER})\s*\.\.\s*({_NUMBER})$")
_SYMBOLS = {"≥": ">=", "≤": "<="}
_TESTS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, b: v >= b, "<=": lambda v, b: v <= b, "==": lambda v, b: v == b,
    "!=": lambda v, b: v != b, ">": lambda v, b: v > b, "<": lambda v, b: v < b,
}


@dataclass(frozen=True)
class Bar:
    """A parsed bar: ``op`` is one of >=, <=, ==, !=, >, < or ``..`` (an inclusive range)."""

    text: str
    op: str
    low: float
    high: float | None = None  # only for a range

    def check(self, value: object) -> bool:
        """True when `value` (a finite number) meets the bar; False for anything else."""
        value = _number(value)
        if value is None or math.isnan(value):
            return False
        if self.op == "..":
            return self.low <= value <= self.high
        return _TESTS[self.op](value, self.low)

    def margin(self, value: object) -> Margin | None:
        """How far `value` is from this bar, and which way (see the module docstring); None
        when `value` is not a finite number."""
        value = _number(value)
        if value is None or not math.isfinite(value):
            return None
        if self.op == "..":
            return Margin(min(value - self.low, self.high - value), "difference")
        if self.op in ("==", "!="):
            distance = abs(value - self.low)
            return Margin(0.0 - distance if self.op == "==" else distance, "difference")
        above = self.op in (">=", ">")
        if self.low > 0 and value > 0:
            return Margin(value / self.low if above else self.low / value, "ratio")
        return Margin(value - self.low if above else self.low - value, "difference")


@dataclass(frozen=True)
class Margin:
    """A figure's distance from its bar: `value` is a ratio (room when above 1) or a difference
    (room when above 0), as `kind` says."""

    value: float
    kind: str  # "ratio" or "difference"

    def __str__(self) -> str:
        return f"{self.value:.2f}x" if self.kind == "ratio" else f"{self.value:+.3g}"


def _number(value: object) -> int | float | None:
    """`value` as a plain int or float (bool and NumPy scalars included), or None if no number."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def parse_bar(text: str) -> Bar:
    """Read a bar: ``">= 1.85"``, ``"<= 1.3"``, ``"== 0"``, ``"< 0.4"`` or ``"0.8..1.2"``.

    ``≥``/``≤`` are read as ``>=``/``<=``. Anything else raises ValueError saying what is accepted.
    """
    if not isinstance(text, str):
        raise ValueError(f"bar must be a string such as '>= 1.85' or '0.8..1.2', got {text!r}")
    stripped = text.strip()
    found = _COMPARISON.match(stripped)
    if found:
        op = _SYMBOLS.get(found.group(1), found.group(1))
        return Bar(text, op, float(found.group(2)))
    found = _RANGE.match(stripped)
    if found:
        low, high = float(found.group(1)), float(found.group(2))
        if low > high:
            raise ValueError(f"bar {text!r}: the range's low end is above its high end")
        return Bar(text, "..", low, high)
    raise ValueError(f"bar {text!r} is not one of '>= x', '<= x', '> x', '< x', '== x', '!= x', "
                     "'low..high'")


@dataclass
class Figure:
    """One reported figure and its verdict (``ok``, ``MISSED``, or ``-`` without a bar)."""

    module: str
    name: str
    value: Any
    unit: str
    bar: str | None
    verdict: str
    error: str = ""
    baseline: str | None = None  # what the figure was measured against; None: an absolute bar
    margin: Margin | None = None

    def _value(self) -> Any:
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # JSON has no NaN or infinity
        return value

    def as_dict(self) -> dict:
        return {"module": self.module, "name": self.name, "value": self._value(),
                "unit": self.unit, "bar": self.bar, "verdict": self.verdict, "error": self.error,
                "baseline": self.baseline}

    def bar_dict(self) -> dict:
        """This figure's bar for the results' "bars": its margin, met or not, its baseline."""
        return {"figure": self.name, "value": self._value(), "unit": self.unit, "bar": self.bar,
                "met": self.verdict == OK,
                "margin": None if self.margin is None else round(self.margin.value, 4),
                "margin_as": None if self.margin is None else self.margin.kind,
                "baseline": self.baseline}


def judge(module: str, name: object, value: object, unit: object, bar: object,
          seen: set[str], baseline: object = None) -> Figure:
    """Turn one ``report(...)`` call into a `Figure`; a malformed report is a MISSED figure."""
    name, unit = str(name), str(unit)
    baseline = None if baseline is None else str(baseline)
    number = _number(value)
    value = value if number is None else number  # NumPy scalars become plain numbers for JSON
    if bar is None:
        figure = Figure(module, name, value, unit, None, NO_BAR, baseline=baseline)
    else:
        try:
            parsed = parse_bar(bar)  # type: ignore[arg-type]
        except ValueError as exc:
            return Figure(module, name, value, unit, str(bar), MISSED, str(exc), baseline)
        met = parsed.check(value)
        error = "" if met or number is not None else f"not a number: {value!r}"
        figure = Figure(module, name, value, unit, str(bar), OK if met else MISSED, error,
                        baseline, parsed.margin(value))
    if name in seen:
        figure.verdict, figure.error = MISSED, "duplicate figure name: reported twice in one run"
    seen.add(name)
    return figure


def shown(value: object) -> str:
    """A figure as printed: four significant digits, so a value just past its bar shows it."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


class LoadMonitor:
    """Samples the 1-minute load average before, during (every `interval` s) and after a run.

    `getload` is ``os.getloadavg`` by default; where the OS has none, every sample is None and
    the run counts as idle (nothing says otherwise).
    """

    def __init__(self, getload: Callable[[], Sequence[float]] | None = None,
                 interval: float = LOAD_SAMPLE_SECONDS) -> None:
        self._getload = getload or getattr(os, "getloadavg", None)
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.before: list[float] | None = None
        self.after: list[float] | None = None
        self.samples: list[float] = []

    def _read(self) -> list[float] | None:
        if self._getload is None:
            return None
        try:
            return [round(float(x), 2) for x in self._getload()]
        except OSError:
            return None

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            load = self._read()
            if load is not None:
                self.samples.append(load[0])

    def __enter__(self) -> LoadMonitor:
        self.before = self._read()
        if self.before is not None:
            self.samples.append(self.before[0])
        self._thread = threading.Thread(target=self._sample, name="bench-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + 1.0)
        self.after = self._read()
        if self.after is not None:
            self.samples.append(self.after[0])

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine spent busy or stolen, CPU seconds of this process and all
    its children, finished or running) so far; None where psutil cannot say."""
    try:
        import psutil

        machine = psutil.cpu_times()
        spent = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        mine = sum(os.times()[:4])  # this process, and its children already reaped
        for child in psutil.Process().children(recursive=True):  # and those still running
            try:
                mine += sum(child.cpu_times()[:4])
            except psutil.Error:
                continue
    except Exception:  # no psutil, or no such counters on this OS: judge by the load alone
        return None
    return spent, mine


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict:
    """Cores (logical, physical, usable), Python, platform, gevent and greenlet versions."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cores": {"logical": os.cpu_count(), "physical": physical_cores(), "usable": usable_cores(),
                  "affinity": affinity},
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "gevent": _version("gevent"),
        "greenlet": _version("greenlet"),
    }


def discover() -> list[str]:
    """The bench modules on disk: every ``bench/<name>.py`` without a leading underscore."""
    import bench

    return [m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")]


def order_modules(names: Iterable[str]) -> list[str]:
    """`names` in `ORDER`, then the others alphabetically."""
    return sorted(set(names), key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def _load(name: str) -> Callable[[Callable[..., None]], None]:
    return importlib.import_module(f"bench.{name}").measure


def _settle_heap() -> None:
    """Collect what the modules before left, and freeze what survives, before the next one.

    Every module runs in this one process: without this, the objects an earlier one kept (a
    traced run of 100,000 spans, say) sit in the collector's oldest generation, and every full
    collection a later one triggers walks them all. Measured: 10,000 sleepers took 1.27 s after
    the other modules and 1.20 s alone.
    """
    gc.collect()
    gc.freeze()


def run_bench(
    modules: Sequence[tuple[str, Callable[[], Callable[[Callable[..., None]], None]]]],
    *,
    output: str | os.PathLike | None = DEFAULT_OUTPUT,
    cores: int | None = None,
    getload: Callable[[], Sequence[float]] | None = None,
    load_interval: float = LOAD_SAMPLE_SECONDS,
    echo: Callable[[str], None] | None = None,
    getcpu: Callable[[], tuple[float, float] | None] = cpu_seconds,
) -> int:
    """Run each ``(name, loader)``: ``loader()`` returns the module's ``measure``; return the exit
    code. A loader or `measure` that raises becomes a MISSED row and the run goes on."""
    cores = cores or usable_cores()
    echo = echo or partial(print, flush=True)
    interrupted = False
    figures: list[Figure] = []
    seen: set[str] = set()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    cpu_before = getcpu()
    with LoadMonitor(getload, load_interval) as load:
        try:
            for module, loader in modules:
                def report(name: str, value: object, unit: str = "", bar: str | None = None, *,
                           baseline: str | None = None, _module: str = module) -> None:
                    figure = judge(_module, name, value, unit, bar, seen, baseline)
                    figures.append(figure)
                    checked = ("" if figure.verdict == NO_BAR else
                               f"  {figure.bar or 'no bar'}  {figure.verdict}")
                    echo(f"bench {figure.name}: {shown(figure.value)} {figure.unit}{checked}"
                         f"{'  (' + figure.error + ')' if figure.error else ''}")

                echo(f"== bench {module}")
                _settle_heap()
                module_started = time.perf_counter()
                try:
                    loader()(report)
                except KeyboardInterrupt:
                    interrupted = True
                    echo(f"bench {module}: interrupted; the figures so far are kept")
                    break
                except Exception as exc:
                    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    echo(traceback.format_exc().rstrip())
                    figures.append(Figure(module, f"{module} (module)", None, "", "no error",
                                          MISSED, f"raised {message}"))
                    echo(f"bench {module}: MISSED (raised {message})")
                timings[module] = round(time.perf_counter() - module_started, 1)
        finally:
            gc.unfreeze()  # the caller's process is left as it was
    mean_load = load.mean
    cpu_after = getcpu()
    foreign = None
    if cpu_before is not None and cpu_after is not None:
        wall = max(time.perf_counter() - started, 1e-9)
        foreign = max(0.0, (cpu_after[0] - cpu_before[0]) - (cpu_after[1] - cpu_before[1])) / wall
    loaded = mean_load is not None and mean_load >= cores
    busy = loaded and (foreign is None or foreign >= FOREIGN_BUSY_CORES)
    missed = [f for f in figures if f.verdict == MISSED]
    for line in table(figures):
        echo(line)
    load_text = "unknown" if mean_load is None else f"{mean_load:.2f}"
    if foreign is not None:
        load_text += f", other programs {foreign:.2f} cores"
    if missed and busy:
        verdict = (f"{len(missed)} bar(s) missed, but the machine was busy (load average "
                   f"{load_text} over the run, {cores} usable cores): not a failure. Run "
                   "`make bench` again on an idle machine.")
    elif missed:
        own = " (the load was the bench's own)" if loaded else ""
        verdict = (f"{len(missed)} bar(s) MISSED on an idle machine{own} (load average "
                   f"{load_text}, {cores} usable cores): " + ", ".join(f.name for f in missed))
    else:
        verdict = (f"every bar met (load average {load_text}, {cores} usable cores"
                   f"{', busy' if busy else ''})")
    echo("seconds per module: " + ", ".join(f"{m} {t:g}" for m, t in timings.items()))
    echo(verdict)
    if output is not None:
        results = {
            **machine_facts(),
            "usable_cores_judged": cores,
            "load_average_before": load.before,
            "load_average_after": load.after,
            "load_average_mean_1min": None if mean_load is None else round(mean_load, 2),
            "load_average_samples_1min": load.samples,  # the bench's own processes count too
            "other_programs_cores": None if foreign is None else round(foreign, 3),
            "busy": busy,
            "interrupted": interrupted,
            "seconds": round(time.perf_counter() - started, 1),
            "module_seconds": timings,
            "missed": [f.name for f in missed],
            "verdict": verdict,
            "bars": [f.bar_dict() for f in figures if f.bar is not None],
            "figures": [f.as_dict() for f in figures],
        }
        text = json.dumps(results, indent=2, ensure_ascii=False, default=repr)
        Path(output).write_text(text + "\n", encoding="utf-8")
    if interrupted:
        return 130  # what a shell reports for Ctrl-C
    return 1 if missed and not busy else 0


def table(figures: Sequence[Figure]) -> list[str]:
    """The figures as aligned text columns: name, value, unit, bar, margin, verdict (and any
    error)."""
    rows = [("figure", "value", "unit", "bar", "margin", "verdict")]
    rows += [(f.name, shown(f.value), f.unit, f.bar or NO_BAR,
              NO_BAR if f.margin is None else str(f.margin),
              f.verdict + (f"  {f.error}" if f.error else "")) for f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[5]
             for row in rows]
    return ["", lines[0], "-" * len(lines[0]), *lines[1:]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="bench modules to run (default: all)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help=f"where to write the results (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    known = discover()
    unknown = sorted(set(args.modules) - set(known))
    if unknown:
        parser.error(f"unknown bench module(s) {', '.join(unknown)}; known: "
                     f"{', '.join(order_modules(known))}")
    names = order_modules(args.modules or known)
    return run_bench([(name, lambda name=name: _load(name)) for name in names],
                     output=args.output)


if __name__ == "__main__":
    sys.exit(main())
