"""One compare for every model: runs of one shape, speed-ups only over runs without failures."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from helpers.chapters.ch04_pools import fail_on
from helpers.runners import (
    Run,
    compare,
    known_models,
    plot_comparison,
    register_model,
    run_model,
)
from helpers.runners import comparison as comparison_module
from helpers.timeline import Trace
from helpers.workloads import cpu_task, io_task

pytestmark = pytest.mark.timeout(120)
RUNNERS = Path(comparison_module.__file__).parent


@pytest.fixture
def registry(monkeypatch):
    """The readers' models, emptied for one test and put back as they were afterwards."""
    monkeypatch.setattr(comparison_module, "_REGISTERED", {})
    return comparison_module._REGISTERED


def test_every_model_returns_the_same_run_shape_with_values_in_task_order():
    tasks = [(n,) for n in (1_000, 2_000, 3_000)]
    comparison = compare(["serial", "threads", "processes", "pool"], cpu_task, tasks, workers=2)
    expected = [cpu_task(n) for (n,) in tasks]
    for model, run in comparison.runs.items():
        assert isinstance(run, Run) and run.model == model
        assert run.values == expected and not run.failures
        assert len(run.trace.select(kind="run")) == len(tasks)


def test_waits_overlap_in_threads_and_the_speedup_says_so():
    comparison = compare(["serial", "threads"], io_task, [(0.2,)] * 4)
    assert comparison.speedup("threads") > 2.5  # 4 waits of 0.2 s: 0.8 s serial, ~0.2 s threads
    assert "×" in comparison.summary()


def test_a_run_with_failures_gets_no_speedup_and_says_which_failed():
    tasks = [(0, 1), (1, 1), (2, 1)]
    comparison = compare(["serial", "pool"], fail_on, tasks, workers=2)
    for model in ("serial", "pool"):
        run = comparison.runs[model]
        assert set(run.failures) == {1} and run.values[0] == 0 and run.values[1] is None
        assert run.failures[1].type_name == "ValueError"
    assert comparison.speedup("pool") is None
    summary = comparison.summary()
    assert "FAILED" in summary and "×" not in summary
    fig = Figure()
    artists = plot_comparison(comparison, list(fig.subplots(2, 1)), fig.add_subplot(3, 1, 3))
    texts = [a.get_text() for a in artists if hasattr(a, "get_text")]
    assert any("failed" in t for t in texts) and not any("×" in t for t in texts)


def test_registered_models_are_runnable_and_bad_models_named(registry):
    def doubled(fn, tasks, *, workers, start_method, timeout):
        return Run("doubled", "doubled", [fn(*t) * 2 for t in tasks], {}, 0.001, Trace())

    register_model("doubled", doubled)
    assert registry == {"doubled": doubled} and known_models()[-1] == "doubled"
    assert compare(["doubled"], cpu_task, [(10,)]).runs["doubled"].values == [2 * cpu_task(10)]
    with pytest.raises(ValueError, match="built-in"):
        register_model("threads", doubled)  # a course model is never replaced behind its name
    with pytest.raises(ValueError, match="models"):
        compare(["quantum"], cpu_task, [(10,)])
    with pytest.raises(ValueError, match="models"):
        compare("serial", cpu_task, [(10,)])


def test_the_registry_fixture_leaves_no_model_behind():
    assert "doubled" not in known_models()  # the test above registered it in its own registry


def test_a_models_time_is_its_whole_call_and_the_speedup_the_ratio_of_those():
    comparison = compare(["serial", "pool"], cpu_task, [(20_000,)] * 4, workers=2)
    pool = comparison.runs["pool"]
    # The pool is started inside the call: its start counts, beside the map's own seconds.
    assert comparison.time_of("pool") >= pool.seconds + pool.details["pool_start_seconds"]
    assert comparison.time_of("serial") >= comparison.runs["serial"].seconds
    assert comparison.speedup("pool") == pytest.approx(comparison.time_of("serial") /
                                                       comparison.time_of("pool"))
    assert f"{comparison.time_of('pool') * 1000:.0f} ms" in comparison.summary()


def negated(n: int) -> int:
    return -n


def test_each_model_may_run_its_own_form_of_the_task_inside_a_context():
    entered = []

    class Around:
        def __enter__(self):
            entered.append(len(entered))
            return entered[-1]

        def __exit__(self, *exc):
            return None

    comparison = compare(["serial", "threads"], cpu_task, [(10,)], forms={"threads": negated},
                         around=Around)
    assert comparison.runs["serial"].values == [cpu_task(10)]
    assert comparison.runs["threads"].values == [-10]
    assert comparison.measured == {"serial": 0, "threads": 1}  # entered once around each model
    with pytest.raises(ValueError, match="forms"):
        compare(["serial"], cpu_task, [(10,)], forms={"threads": io_task})


def test_run_model_runs_one_model_and_checks_its_name():
    run = run_model("threads", cpu_task, [(10,), (20,)])
    assert run.model == "threads" and run.values == [cpu_task(10), cpu_task(20)]
    with pytest.raises(ValueError, match="models"):
        run_model("fibers", cpu_task, [(10,)])


def test_no_runner_imports_the_comparison():
    """`compare` names its runners; a runner that imported it back would close a loop."""
    importers = []
    for path in sorted(RUNNERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("comparison"):
                importers.append(path.name)
    assert importers in ([], ["__init__.py"]), importers


def test_plot_comparison_hatches_each_process_start_from_the_layout():
    comparison = compare(["processes"], cpu_task, [(50_000,)] * 2)
    fig = Figure()
    ax = fig.subplots()
    artists = plot_comparison(comparison, [ax], color_by="cpu")
    hatched = [a for a in artists if getattr(a, "get_hatch", lambda: None)() == "///"]
    assert len(hatched) == 2  # one per process lane
    starts = [e for e in comparison.runs["processes"].trace if e.kind == "start"]
    assert len(starts) == 2  # what was hatched: each process's recorded start
