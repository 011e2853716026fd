"""Call every public callable of one helpers module with bad values; print the outcomes as JSON.

Run by tests/surface/test_public_surface.py as ``python _fuzz.py MODULE ...`` in a subprocess, so
that a hang, a crash or a leftover process cannot harm the test run. For every parameter whose
annotation says int, float, a sequence, a callable or one of the course's choice names, and every
``host``, each bad value of its kind (for a host: every interface, another machine) is passed in
place of a valid value (the defaults, or `BASELINES`), and the outcome recorded: the exception
type and message, "returned" or "hung". After each call, any child process still alive is
recorded (and killed), so the test can say what was left behind.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import psutil

# Every call gets this long: validation answers in microseconds; anything slower did work.
_LIMIT_SECONDS = 1.0
# Left-behind children get this long to go after a call returned or raised.
_REAP_SECONDS = 3.0

BAD = {
    "int": [-1, 10**12, 2.5, "3", float("nan")],
    "float": [-1.0, float("nan"), float("inf"), -float("inf"), 1e12, "1"],
    "sequence": [[], "ab"],
    "callable": [3],
    "choice": ["no-such-choice", 3],
    # Every interface ("" and 0.0.0.0), another machine, not a string: the course binds and
    # connects on loopback only.
    "host": ["", "0.0.0.0", "192.0.2.1", 3],
}
# Parameters that are choices from a fixed set, whatever their annotation says.
CHOICE_NAMES = {"start_method", "kind", "mode", "yield_with", "distribution", "model", "channel",
                "strategy", "latency", "server", "workload"}
# Parameters that are free text, names or data, not sizes: not fuzzed.
FREE = {"name", "label", "title", "message", "text", "what", "lane", "waiting", "exercise_id",
        "answer", "info", "value", "args", "kwargs", "recording", "trace", "run", "runs", "ax",
        "axes", "fig", "progress", "comparison", "scaling", "costs", "choices", "recorder",
        "queue", "pool", "executor", "server", "processes_list", "owners", "blocks", "results",
        "reports", "deadline", "low", "high", "default", "options", "controls", "demo", "errors",
        "exitcode", "ready", "child", "path", "seed", "users", "concurrent", "events", "origin_ns",
        "lanes", "color_by", "legend", "timeline_axes", "bars_ax", "baseline", "details",
        "step", "grace"}

# Valid arguments for callables with required parameters (defaults serve the others), keyed by
# the callable's name or, where two modules share one, by "module.name".
def _baselines():
    from helpers.timeline import Recorder
    from helpers.workloads import cpu_task
    return {
        "check_int": {"name": "n", "value": 1, "low": 0, "high": 2},
        "check_float": {"name": "x", "value": 1.0, "low": 0.0, "high": 2.0},
        "check_timeout": {"name": "timeout", "value": 1.0},
        "check_choice": {"name": "c", "value": "a", "choices": ["a"]},
        "check_callable": {"name": "fn", "value": print},
        "cpu_task": {"iterations": 10},
        "io_task": {"seconds": 0.001},
        "iterations_for": {"seconds": 0.001},
        "mixed_task": {"iterations": 10, "seconds": 0.001},
        "run_serial": {"fn": cpu_task, "tasks": [(10,)]},
        "run_threads": {"fn": cpu_task, "tasks": [(10,)]},
        "run_processes": {"fn": cpu_task, "tasks": [(10,)]},
        "run_pool": {"fn": cpu_task, "items": [10]},
        "compare": {"models": ["serial"], "fn": cpu_task, "tasks": [(10,)]},
        "default_chunksize": {"tasks": 10, "workers": 2},
        "process_pool": {"workers": 1},
        "process_executor": {"workers": 1},
        "interrupt_after": {"seconds": 1.0},
        "chunked_cpu_task": {"iterations": 10, "chunk": 5, "label": "t"},
        "record_cpu_work": {"iterations": 10, "recorder": Recorder("x"), "label": "t",
                            "waiting": "w"},
        "recorded_io_task": {"seconds": 0.001, "label": "t"},
        "run_work": {"mode": "serial", "task_seconds": 0.01},
        "task_items": {"tasks": 2, "task_ms": 1.0},
        "amdahl_speedup": {"serial_fraction": 0.1, "workers": 2},
        "fit_serial_fraction": {"workers": [1, 2], "speedups": [1.0, 1.8]},
        "die_on": {"index": 0, "bad_index": 1},
        "fail_on": {"index": 0, "bad_index": 1},
        "sleep_times": {"count": 3, "distribution": "fixed", "mean": 0.01},
        "pool_sleepers": {"count": 3, "distribution": "fixed", "mean": 0.001, "pool_size": 2},
        "blocking_sleepers": {"durations": [0.001]},
        "memory_per_worker": {"kind": "greenlet", "count": 10},
        "chore": {"name": "c", "seconds": 0.001},
        "fetch": {"name": "c", "seconds": 0.001},
        "chores": {"concurrent": True, "scale": 0.01},
        "Chore": {"what": "c", "seconds": 0.001},
        "wait_for_stop": {"timeout": 0.01},
        "stop_processes": {"processes": []},
        "record_call": {"recorder": Recorder("x"), "label": "t", "fn": cpu_task, "args": (10,)},
        "collect_reports": {"results": None, "processes": [], "reports": {}, "deadline": 0.0},
        "plot_comparison": {"comparison": _comparison()},
        "register_model": {"name": "cc-fuzz", "runner": lambda *a, **k: None},
        "run_patched": {"fn": cpu_task, "args": ()},
        "start_patched": {"fn": cpu_task},
        "run_in_fresh_process": {"fn": cpu_task, "start_method": None},
        "Traced": {"fn": cpu_task},
        "plot_timeline": {"trace": []},
        "stop_server": {"server": _unserved_socketserver()},
        "TimelineLayout": {"ax": None, "rows": {}, "origin_ns": 0},
        "to_chrome_trace": {"trace": []},
        **_chapter_baselines(),
    }


def _chapter_baselines() -> dict:
    """The baselines each chapter keeps in ``_baselines_<chapter>.py`` beside this file."""
    found: dict = {}
    for path in sorted(Path(__file__).parent.glob("_baselines_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.update(module.baselines())
    return found


def _unserved_socketserver():
    import socketserver

    return socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)


def _comparison():
    from helpers.runners import Comparison, Run
    from helpers.timeline import Trace
    return Comparison({"serial": Run("serial", "serial", [1], {}, 1.0, Trace())})


def _guess(parameter: inspect.Parameter):
    """A small valid value for a required parameter, from its annotation; `inspect.Parameter.empty`
    where none can be guessed (a choice, an object): such callables need `BASELINES`."""
    text = str(parameter.annotation)
    if parameter.name in CHOICE_NAMES:
        return None if parameter.name == "start_method" else parameter.empty
    if "bool" in text:
        return False
    if "float" in text:
        return 0.01
    if "int" in text:
        return 1
    if text in ("str", "'str'") or text == "str":
        return "x"
    return parameter.empty


def _kind_of(parameter: inspect.Parameter) -> str | None:
    name = parameter.name
    text = str(parameter.annotation)
    if name in CHOICE_NAMES:
        return "choice"
    if name == "host":
        return "host"
    if name in FREE or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
        return None
    if "Callable" in text or name in ("fn", "before", "on_result", "on_dispatch", "runner"):
        return "callable"
    if any(word in text for word in ("Sequence", "list[", "tuple[")):
        return "sequence"
    if "float" in text:
        return "float"
    if "int" in text and "bool" not in text:
        return "int"
    return None


def _children() -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process().children(recursive=True)
                if "resource_tracker" not in " ".join(p.cmdline())
                and "forkserver" not in " ".join(p.cmdline())]
    except psutil.Error:
        return []


class _Hung(BaseException):
    pass


def _alarm(signum, frame):
    raise _Hung()


def _attempt(fn, kwargs) -> dict:
    try:
        result = fn(**kwargs)
        if inspect.iscoroutine(result):  # an async def validates when it first runs
            import asyncio

            asyncio.run(result)
        elif hasattr(result, "__enter__") and hasattr(result, "__exit__"):
            with result:  # a context manager validates on entry
                pass
        return {"outcome": "returned"}
    except _Hung:
        return {"outcome": "hung"}
    except BaseException as exc:  # noqa: BLE001 - every outcome is data here
        return {"outcome": "raised", "type": type(exc).__name__, "message": str(exc)[:300]}


def _call(fn, kwargs):
    signal.signal(signal.SIGALRM, _alarm)
    started = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, _LIMIT_SECONDS)
        outcome = _attempt(fn, kwargs)
    except _Hung:  # the alarm landed in an exception handler or a finally of the callee
        outcome = {"outcome": "hung"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    outcome["seconds"] = round(time.perf_counter() - started, 3)
    left = _children()
    if left:
        _, alive = psutil.wait_procs(left, timeout=_REAP_SECONDS)
        if alive:
            outcome["left_behind"] = [" ".join(p.cmdline())[:100] for p in alive]
            for p in alive:
                p.kill()
    return outcome


def public_callables(module_name: str):
    module = importlib.import_module(module_name)
    for attr in getattr(module, "__all__", []):
        obj = getattr(module, attr, None)
        home = getattr(obj, "__module__", module_name) or ""
        # Defined here, or in a private submodule of this package (helpers.timeline._plot).
        if obj is None or not (home == module_name or home.startswith(module_name + "._")):
            continue
        if inspect.isclass(obj) and (dataclasses.is_dataclass(obj) or
                                     issubclass(obj, BaseException)):
            continue  # records and errors: built by the course, not entry points
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield attr, obj


def main(*module_names: str) -> None:
    """Fuzz each module; print one JSON object: module name -> its records."""
    baselines = _baselines()
    print(json.dumps({name: fuzz(name, baselines) for name in module_names}))


def fuzz(module_name: str, baselines: dict) -> list[dict]:
    results = []
    for attr, fn in public_callables(module_name):
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        params = [p for p in signature.parameters.values()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        # A baseline is keyed by "module.name" where a bare name would be ambiguous.
        base = dict(baselines.get(f"{module_name}.{attr}", baselines.get(attr, {})))
        for p in params:
            if p.default is p.empty and p.name not in base and _guess(p) is not p.empty:
                base[p.name] = _guess(p)
        missing = [p.name for p in params if p.default is p.empty and p.name not in base]
        for p in params:
            kind = _kind_of(p)
            if kind is None:
                continue
            if missing:
                results.append({"callable": f"{module_name}.{attr}", "parameter": p.name,
                                "outcome": "no baseline", "missing": missing})
                break
            for bad in BAD[kind]:
                kwargs = {**base, p.name: bad}
                record = _call(fn, kwargs)
                record.update({"callable": f"{module_name}.{attr}", "parameter": p.name,
                               "value": repr(bad) if not (isinstance(bad, float) and
                                                          math.isnan(bad)) else "nan"})
                results.append(record)
    return results


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    main(*sys.argv[1:])
