"""Course switches, workloads and calibration, the widget panel, and the exercise checks."""

from __future__ import annotations

import time

import matplotlib
import pytest

matplotlib.use("Agg")

from helpers import course, workloads  # noqa: E402
from helpers.exercises import Feedback, Point, check  # noqa: E402
from helpers.timeline import Recorder, Trace, plot_timeline  # noqa: E402
from helpers.widgets import Choice, Float, Int, Panel  # noqa: E402


# -- parameters --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 33, -1, 2.5, True, "3", None])
def test_check_int_names_parameter_and_range(value):
    with pytest.raises(ValueError, match=r"^workers must be an integer from 1 to 32, got "):
        course.check_int("workers", value, 1, 32)


def test_check_float_and_choice():
    assert course.check_float("seconds", 1, 0, 2) == 1.0
    with pytest.raises(ValueError, match="seconds must be a number from 0 to 2"):
        course.check_float("seconds", float("nan"), 0, 2)
    with pytest.raises(ValueError, match="start_method must be one of"):
        course.mp_context("threadpool")


def test_describe_machine_tells_cores_and_start_methods():
    info = course.describe_machine()
    assert info["logical cores"] >= 1
    assert info["default start method"] in course.START_METHODS
    assert "<table>" in info._repr_html_()


# -- workloads ---------------------------------------------------------------------------------
def test_calibration_sizes_a_task_to_its_target_duration():
    n = workloads.iterations_for(0.1)
    started = time.perf_counter()
    workloads.cpu_task(n)
    elapsed = time.perf_counter() - started
    assert 0.03 < elapsed < 0.5  # target 0.1 s; loose: the machine may be busy


def test_cpu_task_is_deterministic_and_io_task_sleeps():
    assert workloads.cpu_task(1000) == workloads.cpu_task(1000)
    started = time.perf_counter()
    assert workloads.io_task(0.02) == 0.02
    assert time.perf_counter() - started >= 0.02


@pytest.mark.parametrize(("fn", "arg", "name"), [
    (workloads.cpu_task, -1, "iterations"),
    (workloads.io_task, 61, "seconds"),
    (workloads.iterations_for, -0.5, "seconds"),
])
def test_workloads_reject_bad_sizes(fn, arg, name):
    with pytest.raises(ValueError, match=name):
        fn(arg)


# -- the panel ---------------------------------------------------------------------------------
def _demo(fig, progress, n, kind, scale):
    rec = Recorder("worker", cpus=False)
    for i in range(n):
        with rec.span(f"task {i}", kind):
            time.sleep(0.001 * scale)
        progress((i + 1) / n)
    plot_timeline(Trace().extend(rec.recording()), fig.subplots())
    return f"{n} tasks"


def _panel():
    return Panel("demo", [Int("n", 1, 5, 2), Choice("kind", ["run", "io"]),
                          Float("scale", 0.5, 2.0, 1.0)], _demo)


def test_panel_runs_redraws_in_place_and_reports_progress():
    panel = _panel()
    assert panel.run() == "2 tasks"
    first = bytes(panel._image.value)
    assert first.startswith(b"\x89PNG") and panel._progress.value == 1.0
    assert panel.run(n=4, kind="io") == "4 tasks"
    assert bytes(panel._image.value) != first  # the same Image widget, a new picture
    assert panel.values["n"] == 4 and panel.runs == 2
    assert not panel._button.disabled


def test_panel_controls_are_bounded_and_lazy():
    panel = _panel()
    slider = panel._inputs["n"]
    assert (slider.min, slider.max, slider.continuous_update) == (1, 5, False)
    slider.value = 99  # the widget clamps: a value outside the range cannot be sent
    assert slider.value == 5
    assert {"cc-panel"} <= set(panel.widget._dom_classes)
    assert "cc-run" in panel._button._dom_classes and "cc-plot" in panel._image._dom_classes


@pytest.mark.parametrize(("overrides", "name"), [({"n": 0}, "n"), ({"kind": "x"}, "kind"),
                                                 ({"scale": 9.0}, "scale"), ({"m": 1}, "m")])
def test_panel_rejects_values_outside_its_controls(overrides, name):
    with pytest.raises(ValueError, match=name):
        _panel().run(**overrides)


def test_panel_button_shows_errors_instead_of_raising():
    def broken(fig, progress):
        raise RuntimeError("boom")

    panel = Panel("broken", [], broken)
    panel._on_click(panel._button)  # what a click does
    assert "failed" in panel._status.value and not panel._button.disabled


def test_panel_rejects_duplicate_control_names():
    with pytest.raises(ValueError, match="distinct"):
        Panel("x", [Int("n", 1, 2, 1), Int("n", 1, 2, 1)], _demo)


# -- exercises ---------------------------------------------------------------------------------
def test_check_says_what_is_right_and_wrong(monkeypatch):
    import helpers.exercises as ex

    monkeypatch.setattr(ex, "QUICK", False)  # as a reader sees it: feedback, never an exception
    feedback = check("00.2", {"cpu": {"threads"}, "io": {"threads", "processes"}})
    assert isinstance(feedback, Feedback) and not feedback.passed
    assert [p.ok for p in feedback.points] == [False, True]
    assert "✗" in repr(feedback) and "❌" in feedback._repr_html_()
    assert check("00.1", ...).answered is False
    assert "could not read" in repr(check("00.2", {"cpu": [[1]], "io": [[2]]}))


def test_check_fails_loudly_under_the_test_suite(monkeypatch):
    import helpers.exercises as ex

    monkeypatch.setattr(ex, "QUICK", True)
    with pytest.raises(AssertionError, match="00.2"):
        check("00.2", {"cpu": {"serial"}, "io": set()})
    assert check("00.2", {"cpu": {"processes"}, "io": {"threads", "processes"}}).passed


def test_unknown_exercise_is_a_value_error():
    with pytest.raises(ValueError, match="exercise"):
        check("99.9", 1)


def test_the_environment_can_choose_the_kernel_safe_start_method_but_never_fork(monkeypatch):
    from helpers.course import START_METHOD_VARIABLE, check_start_method, kernel_safe_start_method

    monkeypatch.setenv(START_METHOD_VARIABLE, "spawn")
    assert kernel_safe_start_method() == "spawn" and check_start_method(None) == "spawn"
    for refused in ("fork", "thread"):
        monkeypatch.setenv(START_METHOD_VARIABLE, refused)
        with pytest.raises(ValueError, match=START_METHOD_VARIABLE):
            kernel_safe_start_method()
    monkeypatch.delenv(START_METHOD_VARIABLE)
    assert kernel_safe_start_method() in ("forkserver", "spawn")


def test_contention_counts_other_programs_not_this_run(tmp_path):
    """A program outside the test run that keeps a core busy is seen as contention; this run's own
    busy child is not (it is what a speed-up test measures)."""
    import subprocess
    import sys

    import _timing

    from helpers.runners import run_processes
    from helpers.workloads import cpu_task, iterations_for

    _timing.measure_contention()
    own_before = _timing.own_cpu_seconds()
    run_processes(cpu_task, [(iterations_for(0.4),)], start_method="spawn")
    # The child's CPU is this run's own, even though it has exited.
    assert _timing.own_cpu_seconds() - own_before >= 0.3
    own_only = _timing.others_cores()
    # A busy loop that is not our child: started in its own session by a shell that exits.
    script = tmp_path / "spin.py"
    script.write_text("import time\nend = time.time() + 1.2\nwhile time.time() < end: pass\n")
    subprocess.run(f"setsid {sys.executable} {script} & sleep 0.05", shell=True, check=True)
    _timing.measure_contention()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
    others = _timing.others_cores()
    time.sleep(0.3)  # the spinner's last 0.2 s: nothing of it outlives the test
    if own_only >= 0.25:
        pytest.skip(f"inconclusive: other programs already used {own_only:.2f} cores")
    assert others >= 0.6, f"a spinning program outside the run was seen as {others:.2f} cores"


def test_an_unsure_point_makes_the_answer_inconclusive_never_right(monkeypatch):
    from helpers import exercises

    monkeypatch.setitem(exercises._CHECKS, "99.1", ("probe", lambda answer: answer))
    unsure = check("99.1", [Point(True, "it runs"), Point.unsure("busy: no speed-up to see")])
    assert not unsure.passed and not unsure.wrong and unsure.inconclusive
    assert "inconclusive" in repr(unsure) and "? busy" in repr(unsure)
    assert "all right" not in repr(unsure) and "❔" in unsure._repr_html_()
    monkeypatch.setattr(exercises, "QUICK", True)  # as under the notebook tests
    check("99.1", [Point(True, "it runs"), Point.unsure("busy")])  # not judged: no error
    with pytest.raises(AssertionError):  # a wrong answer still raises there
        check("99.1", [Point(False, "serial"), Point.unsure("busy")])


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_check_loopback_host_accepts_this_machine(host):
    assert course.check_loopback_host("host", host) == host


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.",
                                  None, 127])
def test_check_loopback_host_refuses_every_other_interface_naming_it(host):
    with pytest.raises(ValueError, match=r"^host must be a loopback address .* got "):
        course.check_loopback_host("host", host)
    assert course.LOOPBACK == "127.0.0.1" and "LOOPBACK" in course.__all__
