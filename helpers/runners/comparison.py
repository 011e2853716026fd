"""One comparison for the whole course: the same tasks run by several models, side by side.

Chapter 00 (the GIL), chapter 01 (speed-up on real cores) and chapter 08 (every model on every
workload) all ask the same question, so they share one function, one speed-up and one picture::

    compare(["serial", "threads", "processes"], fn, tasks)
       │  for each model in turn, on the same tasks, the whole call timed (`around` it, if given):
       ├─ run_model("serial", fn, tasks)      ──> run_serial
       ├─ run_model("threads", fn, tasks)     ──> run_threads
       ├─ run_model("processes", fn, tasks)   ──> run_processes
       └─ … "pool", "gevent", "asyncio", "gevent-in-processes", "dask", or a reader's own model
       ▼
    Comparison(runs={model: Run}, seconds={model: its whole call})
       ├─ .speedup(model)   baseline seconds / model seconds; None if either run had failures
       ├─ .summary()
       └─ plot_comparison(comparison, timeline_axes, bars_ax)

A model's time is its runner's whole call, as a program that does the job once pays it: threads,
processes and pools are started inside it. The speed-up of a model is the baseline's time over
its time; a run with failed tasks is reported as failed, and no speed-up is ever computed over
failures. `run_model` is the table of models, each one a course runner; the coroutine and Dask
runners are imported by the first comparison that runs them (before its clock starts), as most
chapters never need gevent, asyncio or Dask. No runner imports this module. `register_model`
adds a reader's own model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any

from helpers.course import check_callable, check_int, check_start_method, check_timeout
from helpers.timeline import model_color

from .contract import DEFAULT_TIMEOUT_SECONDS, check_tasks
from .inkernel import run_serial, run_threads
from .pools import run_pool
from .processes import MAX_PROCESSES, run_processes
from .run import Run

__all__ = ["Comparison", "compare", "known_models", "plot_comparison", "register_model",
           "run_model"]

Runner = Callable[..., Run]
# The models `run_model` knows itself, in the order the course meets them.
_BUILT_IN = ("serial", "threads", "processes", "pool", "gevent", "asyncio",
             "gevent-in-processes", "dask")
# The models readers add with `register_model`.
_REGISTERED: dict[str, Runner] = {}


def register_model(name: str, runner: Runner) -> None:
    """Make `name` a model `compare` can run, with ``runner(fn, tasks, *, workers, start_method,
    timeout) -> Run``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in _BUILT_IN:
        raise ValueError(f"name must not be a built-in model ({', '.join(_BUILT_IN)}), "
                         f"got {name!r}")
    check_callable("runner", runner)
    _REGISTERED[name] = runner


def known_models() -> list[str]:
    """Every model `compare` can be asked for: the course's own, then any registered."""
    return [*_BUILT_IN, *_REGISTERED]


def _check_model(model: object) -> str:
    if not isinstance(model, str) or model not in known_models():
        raise ValueError(f"models must be drawn from {', '.join(known_models())}, got {model!r}")
    return model


def run_model(model: str, fn: Callable[..., Any], tasks: Sequence[Any], *, workers: int = 2,
              start_method: str | None = None,
              timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Run:
    """`tasks` run by `model`: which course runner that is (the chapter that writes it out)."""
    model = _check_model(model)
    check_callable("fn", fn)
    tasks = check_tasks(tasks)
    check_int("workers", workers, 1, MAX_PROCESSES)
    start_method = check_start_method(start_method)
    timeout = check_timeout("timeout", timeout)
    if model == "serial":  # one after the other in the kernel (00)
        return run_serial(fn, tasks)
    if model == "threads":  # a thread per task (00)
        return run_threads(fn, tasks, timeout=timeout)
    if model == "processes":  # a process per task (01)
        return run_processes(fn, tasks, start_method=start_method, timeout=timeout)
    if model == "pool":  # multiprocessing.Pool.map over `workers` processes, started inside (04)
        return run_pool(fn, tasks, workers=workers, start_method=start_method,
                        warm_up=False, timeout=timeout, capture_failures=True)
    if model in ("gevent", "asyncio", "gevent-in-processes"):
        from . import coroutines
        if model == "gevent":  # a greenlet per task (05)
            return coroutines.run_gevent(fn, tasks, timeout=timeout)
        if model == "asyncio":  # a coroutine per task, or to_thread for a plain function (05)
            return coroutines.run_asyncio(fn, tasks, timeout=timeout)
        return coroutines.run_gevent_in_processes(  # greenlets in `workers` processes (07)
            fn, tasks, workers=workers, start_method=start_method, timeout=timeout)
    if model == "dask":  # Dask's scheduler, a local cluster of `workers` processes (09)
        return _dask(fn, tasks, workers, timeout)
    return _REGISTERED[model](fn, tasks, workers=workers, start_method=start_method,
                              timeout=timeout)


def _import_runner(model: str) -> None:
    """Import the module of `model`'s runner (as `run_model` will) before its clock starts: the
    first comparison that runs gevent must not time the import of the coroutine runners."""
    if model in ("gevent", "asyncio", "gevent-in-processes"):
        from . import coroutines  # noqa: F401
    elif model == "dask":
        _check_dask()


def _check_dask() -> None:
    if find_spec("distributed") is None:  # Dask is optional: the course runs without it
        raise ValueError("model 'dask' needs Dask's distributed package, which is not installed "
                         "here")
    from . import dask  # noqa: F401


def _dask(fn: Callable[..., Any], tasks: Sequence[Any], workers: int, timeout: float) -> Run:
    _check_dask()
    from .dask import MAX_DASK_WORKERS, run_dask

    return run_dask(fn, tasks, workers=min(workers, MAX_DASK_WORKERS), timeout=timeout)


@dataclass
class Comparison:
    """The runs of one comparison, by model; speed-ups are against `baseline` (serial).

    ``seconds[model]`` is the wall time of that model's whole call (`compare` measures it; a
    model missing there counts its run's own ``seconds``). ``measured[model]`` is what the
    `around` context of `compare` gave for that model (chapter 08: its memory sampler).
    """

    runs: dict[str, Run]
    baseline: str = "serial"
    seconds: dict[str, float] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    def failed(self, model: str) -> bool:
        return bool(self.runs[model].failures)

    def time_of(self, model: str) -> float:
        """The seconds `model` took: its whole call (see the class)."""
        return self.seconds.get(model, self.runs[model].seconds)

    def speedup(self, model: str) -> float | None:
        """How many times faster than the baseline `model` was; None if either had failures."""
        base, run = self.runs.get(self.baseline), self.runs[model]
        if base is None or base.failures or run.failures or self.time_of(model) <= 0:
            return None
        return self.time_of(self.baseline) / self.time_of(model)

    def failure_note(self, model: str) -> str:
        """Why `model` has no speed-up because of failed tasks ("" when none failed)."""
        run = self.runs[model]
        if not run.failures:
            return ""
        first = next(iter(run.failures.values()))
        return f"{len(run.failures)} of {len(run.values)} tasks FAILED ({first}) — no speed-up"

    def summary(self) -> str:
        parts = []
        for model, run in self.runs.items():
            if run.failures:
                parts.append(f"{model}: {self.failure_note(model)}")
                continue
            text = f"{model}: {self.time_of(model) * 1000:.0f} ms"
            speedup = self.speedup(model) if model != self.baseline else None
            if speedup is not None:
                text += f" (×{speedup:.2f})"
            parts.append(text)
        return "; ".join(parts)


def _check_forms(forms: object, models: Sequence[str]) -> Mapping[str, Callable[..., Any]]:
    if forms is None:
        return {}
    if not isinstance(forms, Mapping) or set(forms) - set(models):
        raise ValueError(f"forms must map some of the models {list(models)} to functions, "
                         f"got {forms!r}")
    for model, form in forms.items():
        check_callable(f"forms[{model!r}]", form)
    return forms


def compare(
    models: Sequence[str],
    fn: Callable[..., Any],
    tasks: Sequence[Any],
    *,
    workers: int | None = None,
    start_method: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    progress: Callable[[float, str], None] | None = None,
    forms: Mapping[str, Callable[..., Any]] | None = None,
    around: Callable[[], AbstractContextManager] | None = None,
) -> Comparison:
    """Run `tasks` (argument tuples for `fn`) with each of `models`, one model after the other.

    ``workers`` is for the pooled models (pool, gevent…): None means one per task, up to 64;
    threads and processes always use one per task. ``start_method=None`` is the kernel-safe
    default. `progress(fraction, text)` is told before each model (a panel's progress bar).
    `forms` maps a model to the form of the task it runs instead of `fn` (a gevent or asyncio
    form of the same work). `around()` makes a context manager entered around each model's call
    (a memory sampler): what it gives is kept in ``measured``. The baseline is ``"serial"`` when
    it is among `models`, else the first model.
    """
    if isinstance(models, str) or not isinstance(models, Sequence) or not models:
        raise ValueError(f"models must be a non-empty list drawn from {', '.join(known_models())},"
                         f" got {models!r}")
    models = [_check_model(model) for model in models]
    check_callable("fn", fn)
    forms = _check_forms(forms, models)
    tasks = check_tasks(tasks)
    start_method = check_start_method(start_method)
    timeout = check_timeout("timeout", timeout)
    workers = min(len(tasks), MAX_PROCESSES) if workers is None else \
        check_int("workers", workers, 1, MAX_PROCESSES)
    for name, hook in (("progress", progress), ("around", around)):
        if hook is not None:
            check_callable(name, hook)
    for model in models:
        _import_runner(model)
    comparison = Comparison({}, "serial" if "serial" in models else models[0])
    for done, model in enumerate(models):
        if progress is not None:
            progress(done / len(models), f"running {model}…")
        with around() if around is not None else nullcontext() as measured:
            started = time.perf_counter()
            comparison.runs[model] = run_model(model, forms.get(model, fn), tasks,
                                               workers=workers, start_method=start_method,
                                               timeout=timeout)
            comparison.seconds[model] = time.perf_counter() - started
        if around is not None:
            comparison.measured[model] = measured
    if progress is not None:
        progress(1.0, "done")
    return comparison


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
        title = f"{run.label}: {comparison.time_of(model) * 1000:.0f} ms"
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
    names = list(comparison.runs)
    seconds = [comparison.time_of(m) for m in names]
    colors = [model_color(m) for m in names]
    artists = [ax.barh(names, seconds, color=colors)]
    for row, (model, run) in enumerate(comparison.runs.items()):
        if run.failures:
            text = f" {len(run.failures)} failed"
        else:
            text = f" {seconds[row]:.2f} s"
            speedup = comparison.speedup(model) if model != comparison.baseline else None
            if speedup is not None:
                text += f"  {speedup:.2f}×"
        artists.append(ax.text(seconds[row], row, text, va="center", fontsize=11))
    ax.invert_yaxis()
    ax.set_xlim(0, max(max(seconds), 1e-6) * 1.6)
    ax.set_xlabel("wall time (s)", fontsize=12)
    ax.set_title("same work", fontsize=13)
    return artists
