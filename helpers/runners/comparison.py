"""One comparison for the whole course: the same tasks run by several models, side by side.

Chapter 00 (the GIL), chapter 01 (speed-up on real cores) and chapter 08 (every model on every
workload) all ask the same question, so they share one function and one picture::

    compare(["serial", "threads", "processes"], fn, tasks)
       │  for each model, in turn, on the same tasks:
       ├─ run_serial(fn, tasks)                      ─┐
       ├─ run_threads(fn, tasks)                      ├─> Comparison(runs={model: Run})
       ├─ run_processes(fn, tasks, start_method=…)    │     .speedup(model)  (None if any failed)
       └─ run_pool / registered runners (gevent, …)  ─┘     .summary()
                                                            plot_comparison(c, timeline_axes,
                                                                            bars_ax)

A model is a name bound to a runner ``runner(fn, tasks, *, workers, start_method, timeout) ->
Run``. The built-in ones are here; `register_model` adds others (the coroutine and Dask runners
register themselves when their module is imported, and `compare` imports them on first use).
A run with failed tasks is reported as failed: no speed-up is ever computed over failures.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from helpers.course import check_callable, check_int, check_start_method, check_timeout

from .contract import DEFAULT_TIMEOUT_SECONDS, check_tasks
from .inkernel import run_serial, run_threads
from .pools import run_pool
from .processes import MAX_PROCESSES, run_processes
from .run import Run

__all__ = ["Comparison", "compare", "known_models", "plot_comparison", "register_model"]

Runner = Callable[..., Run]
# Colours of the comparison bars: one per model, colour-blind safe (Okabe-Ito), grey for serial.
_MODEL_COLORS = {"serial": "#999999", "threads": "#E69F00", "processes": "#0072B2",
                 "pool": "#56B4E9", "gevent": "#009E73", "asyncio": "#CC79A7"}
_OTHER_COLOR = "#D55E00"
# Models whose runners live in modules that are imported only when a comparison asks for them
# (they pull in gevent's pools, asyncio loops or Dask, which most chapters never need).
_LAZY_MODULES = {"gevent": "helpers.runners.coroutines", "asyncio": "helpers.runners.coroutines",
                 "gevent-in-processes": "helpers.runners.coroutines",
                 "dask": "helpers.runners.dask"}


def _serial(fn, tasks, *, workers, start_method, timeout) -> Run:
    return run_serial(fn, tasks)


def _threads(fn, tasks, *, workers, start_method, timeout) -> Run:
    return run_threads(fn, tasks, timeout=timeout)


def _processes(fn, tasks, *, workers, start_method, timeout) -> Run:
    return run_processes(fn, tasks, start_method=start_method, timeout=timeout)


def _pool(fn, tasks, *, workers, start_method, timeout) -> Run:
    return run_pool(fn, [tuple(t) for t in tasks], workers=workers, start_method=start_method,
                    timeout=timeout, capture_failures=True)


_MODELS: dict[str, Runner] = {"serial": _serial, "threads": _threads, "processes": _processes,
                              "pool": _pool}


def register_model(name: str, runner: Runner) -> None:
    """Make `name` a model `compare` can run, with ``runner(fn, tasks, *, workers, start_method,
    timeout) -> Run``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    check_callable("runner", runner)
    _MODELS[name] = runner


def known_models() -> list[str]:
    """Every model `compare` can run on this interpreter (optional ones once importable)."""
    return [*_MODELS, *(m for m in _LAZY_MODULES if m not in _MODELS)]


def _runner(model: object) -> Runner:
    if isinstance(model, str) and model not in _MODELS and model in _LAZY_MODULES:
        try:
            importlib.import_module(_LAZY_MODULES[model])
        except ImportError as exc:
            raise ValueError(f"model {model!r} needs {_LAZY_MODULES[model]}, which could not be "
                             f"imported here: {exc}") from exc
    if not isinstance(model, str) or model not in _MODELS:
        raise ValueError(f"models must be drawn from {', '.join(known_models())}, got {model!r}")
    return _MODELS[model]


@dataclass
class Comparison:
    """The runs of one comparison, by model; speed-ups are against `baseline` (serial)."""

    runs: dict[str, Run]
    baseline: str = "serial"

    def failed(self, model: str) -> bool:
        return bool(self.runs[model].failures)

    def speedup(self, model: str) -> float | None:
        """How many times faster than the baseline `model` was; None if either had failures."""
        base, run = self.runs.get(self.baseline), self.runs[model]
        if base is None or base.failures or run.failures or run.seconds <= 0:
            return None
        return base.seconds / run.seconds

    def summary(self) -> str:
        parts = []
        for model, run in self.runs.items():
            if run.failures:
                first = next(iter(run.failures.values()))
                parts.append(f"{model}: {len(run.failures)} of {len(run.values)} tasks FAILED "
                             f"({first}) — no speed-up")
                continue
            text = f"{model}: {run.seconds * 1000:.0f} ms"
            speedup = self.speedup(model) if model != self.baseline else None
            if speedup is not None:
                text += f" (×{speedup:.2f})"
            parts.append(text)
        return "; ".join(parts)


def compare(
    models: Sequence[str],
    fn: Callable[..., Any],
    tasks: Sequence[Any],
    *,
    workers: int | None = None,
    start_method: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    progress: Callable[[float, str], None] | None = None,
) -> Comparison:
    """Run `tasks` (argument tuples for `fn`) with each of `models`, one model after the other.

    ``workers`` is for the pooled models (pool, gevent…): None means one per task, up to 64;
    threads and processes always use one per task. ``start_method=None`` is the kernel-safe
    default. `progress(fraction, text)` is told before each model (a panel's progress bar).
    The baseline is ``"serial"`` when it is among `models`.
    """
    if isinstance(models, str) or not isinstance(models, Sequence) or not models:
        raise ValueError(f"models must be a non-empty list drawn from {', '.join(known_models())},"
                         f" got {models!r}")
    runners = {model: _runner(model) for model in models}
    check_callable("fn", fn)
    tasks = check_tasks(tasks)
    start_method = check_start_method(start_method)
    timeout = check_timeout("timeout", timeout)
    workers = min(len(tasks), MAX_PROCESSES) if workers is None else \
        check_int("workers", workers, 1, MAX_PROCESSES)
    if progress is not None:
        check_callable("progress", progress)
    runs: dict[str, Run] = {}
    for done, (model, runner) in enumerate(runners.items()):
        if progress is not None:
            progress(done / len(runners), f"running {model}…")
        runs[model] = runner(fn, tasks, workers=workers, start_method=start_method,
                             timeout=timeout)
    if progress is not None:
        progress(1.0, "done")
    return Comparison(runs, "serial" if "serial" in runs else next(iter(runs)))


def plot_comparison(comparison: Comparison, timeline_axes: Sequence[Any] = (), bars_ax=None, *,
                    models: Sequence[str] | None = None, color_by: str = "kind",
                    hatch_starts: bool = True) -> list:
    """Draw a comparison: one timeline per model on `timeline_axes`, and wall-time bars.

    `models` picks which runs get a timeline (default: all, in order; give as many axes).
    ``color_by="cpu"`` colours the timelines by core. Each process's ``start`` span is drawn
    hatched over its lane, from the layout `plot_timeline` returns. A failed run is drawn with
    its failures named instead of a speed-up. Returns the artists.
    """
    from matplotlib.patches import Patch

    from helpers.timeline import plot_timeline

    if not isinstance(comparison, Comparison):
        raise TypeError(f"comparison must be a Comparison, got {type(comparison).__name__}")
    if models is not None and (isinstance(models, str) or not isinstance(models, Sequence) or
                               not models or any(m not in comparison.runs for m in models)):
        raise ValueError(f"models must be a non-empty list drawn from {list(comparison.runs)}, "
                         f"got {models!r}")
    chosen = list(models) if models is not None else list(comparison.runs)
    if len(timeline_axes) not in (0, len(chosen)):
        raise ValueError(f"timeline_axes must hold one axes per model ({len(chosen)}), "
                         f"got {len(timeline_axes)}")
    artists: list = []
    for ax, model in zip(timeline_axes, chosen):
        run = comparison.runs[model]
        speedup = comparison.speedup(model) if model != comparison.baseline else None
        title = f"{run.label}: {run.seconds * 1000:.0f} ms"
        if run.failures:
            title += f" — {len(run.failures)} of {len(run.values)} tasks failed"
        elif speedup is not None:
            title += f" (×{speedup:.2f} vs {comparison.baseline})"
        layout = plot_timeline(run.trace, ax, title=title, color_by=color_by)
        artists += layout
        starts = run.trace.select(kind="start")
        if hatch_starts and starts and color_by != "kind":
            artists += layout.mark(starts, facecolors="none", edgecolors="white", hatch="///",
                                   linewidth=0)
            if ax.get_legend() is not None:  # a legend entry for the hatching
                handles, names = ax.get_legend_handles_labels()
                handles.append(Patch(facecolor="#999999", edgecolor="white", hatch="///",
                                     linewidth=0))
                names.append("starting: start() → first line")
                artists.append(ax.legend(handles, names, loc="upper left",
                                         bbox_to_anchor=(1.01, 1.0), fontsize=11, frameon=False))
    for ax in list(timeline_axes)[:-1]:
        ax.set_xlabel("")
    if bars_ax is not None:
        artists += _plot_bars(comparison, bars_ax)
    return artists


def _plot_bars(comparison: Comparison, ax) -> list:
    runs = list(comparison.runs.values())
    names = list(comparison.runs)
    seconds = [r.seconds for r in runs]
    colors = [_MODEL_COLORS.get(m, _OTHER_COLOR) for m in names]
    artists = [ax.barh(names, seconds, color=colors)]
    for row, (model, run) in enumerate(comparison.runs.items()):
        if run.failures:
            text = f" {len(run.failures)} failed"
        else:
            text = f" {run.seconds:.2f} s"
            speedup = comparison.speedup(model) if model != comparison.baseline else None
            if speedup is not None:
                text += f"  {speedup:.2f}×"
        artists.append(ax.text(run.seconds, row, text, va="center", fontsize=11))
    ax.invert_yaxis()
    ax.set_xlim(0, max(max(seconds), 1e-6) * 1.6)
    ax.set_xlabel("wall time (s)", fontsize=12)
    ax.set_title("same work", fontsize=13)
    return artists
