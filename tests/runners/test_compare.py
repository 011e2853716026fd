"""One compare for every model: runs of one shape, speed-ups only over runs without failures."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from helpers.chapters.ch04_pools import fail_on
from helpers.runners import Run, compare, known_models, plot_comparison, register_model
from helpers.timeline import Trace
from helpers.workloads import cpu_task, io_task

pytestmark = pytest.mark.timeout(120)


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


def test_registered_models_are_runnable_and_bad_models_named(monkeypatch):
    from helpers.runners import comparison as comparison_module

    def doubled(fn, tasks, *, workers, start_method, timeout):
        return Run("doubled", "doubled", [fn(*t) * 2 for t in tasks], {}, 0.001, Trace())

    # The registry is the module's: restored after the test, so later tests see the real one.
    monkeypatch.setattr(comparison_module, "_MODELS", dict(comparison_module._MODELS))
    register_model("doubled", doubled)
    assert "doubled" in known_models()
    assert compare(["doubled"], cpu_task, [(10,)]).runs["doubled"].values == [2 * cpu_task(10)]
    with pytest.raises(ValueError, match="models"):
        compare(["quantum"], cpu_task, [(10,)])
    with pytest.raises(ValueError, match="models"):
        compare("serial", cpu_task, [(10,)])


def test_plot_comparison_hatches_each_process_start_from_the_layout():
    comparison = compare(["processes"], cpu_task, [(50_000,)] * 2)
    fig = Figure()
    ax = fig.subplots()
    artists = plot_comparison(comparison, [ax], color_by="cpu")
    hatched = [a for a in artists if getattr(a, "get_hatch", lambda: None)() == "///"]
    assert len(hatched) == 2  # one per process lane
    starts = [e for e in comparison.runs["processes"].trace if e.kind == "start"]
    assert len(starts) == 2  # what was hatched: each process's recorded start
