"""`make bench`'s checker: bars parsed and checked, the table, the results file, the exit code.

Only fake modules and figures here: no real benchmark runs in the test suite.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest

from bench.__main__ import (
    MISSED,
    NO_BAR,
    OK,
    LoadMonitor,
    cpu_seconds,
    discover,
    main,
    order_modules,
    parse_bar,
    run_bench,
)

IDLE = (0.5, 0.5, 0.5)  # a 1-minute load average well under 2 usable cores
BUSY = (6.0, 6.0, 6.0)


@pytest.mark.parametrize(("bar", "value", "met"), [
    (">= 1.85", 1.85, True), (">= 1.85", 1.849, False),
    ("<= 1.3", 1.3, True), ("<= 1.3", 1.31, False),
    ("< 0.4", 0.39, True), ("< 0.4", 0.4, False),
    ("> 1", 1.01, True), ("> 1", 1, False),
    ("== 0", 0, True), ("== 0", 1, False), ("== 1", True, True),
    ("!= 0", 3, True), ("!= 0", 0.0, False),
    ("0.8..1.2", 0.8, True), ("0.8..1.2", 1.2, True), ("0.8..1.2", 1.21, False),
    ("0.8..1.2", 0.79, False), ("-1..1", -0.5, True),
    ("  >=1e-3 ", 0.002, True), ("≤ 1.05", 1.06, False), ("≥ 2", 2, True),
])
def test_bars_are_parsed_and_checked(bar, value, met):
    assert parse_bar(bar).check(value) is met


@pytest.mark.parametrize("value", [math.nan, None, "1.0", [1.0]])
def test_a_value_that_is_not_a_number_never_meets_a_bar(value):
    assert parse_bar("<= 1e9").check(value) is False
    assert parse_bar("0..1e9").check(value) is False


@pytest.mark.parametrize("bar", ["", "1.3", "=> 1", "<= ", "within 0.8-1.2", "1.2..0.8",
                                 ">= one", "0.8...1.2", 1.3])
def test_unreadable_bars_are_refused_with_what_is_accepted(bar):
    with pytest.raises(ValueError, match="bar"):
        parse_bar(bar)


def fake(*figures, raises: Exception | None = None):
    """A fake bench module: `measure(report)` reports `figures`, then maybe raises."""
    def measure(report):
        for figure in figures:
            report(*figure)
        if raises is not None:
            raise raises
    return lambda: measure


def run(modules, tmp_path, load=IDLE, cores=2, foreign_cores=1.0):
    """Run fake modules; the machine's other programs take `foreign_cores` all along."""
    lines: list[str] = []
    code = run_bench(list(modules.items()), output=tmp_path / "results.json", cores=cores,
                     getload=lambda: load, load_interval=0.01, echo=lines.append,
                     getcpu=lambda: (time.perf_counter() * foreign_cores, 0.0))
    return code, "\n".join(lines), json.loads((tmp_path / "results.json").read_text())


def test_every_bar_met_exits_0_and_the_table_lists_every_figure(tmp_path):
    code, out, results = run({
        "a": fake(("speedup", 1.9, "x serial", ">= 1.85"), ("start_ms", 6.0, "ms")),
        "b": fake(("vs_bare", 1.1, "x bare", "0.8..1.2")),
    }, tmp_path)
    assert code == 0
    assert "every bar met" in out
    rows = out[out.index("figure"):].splitlines()
    assert [r.split()[0] for r in rows[2:5]] == ["speedup", "start_ms", "vs_bare"]
    assert rows[2].split()[-1] == OK and rows[3].split()[-1] == NO_BAR
    assert [(f["name"], f["bar"], f["verdict"]) for f in results["figures"]] == [
        ("speedup", ">= 1.85", OK), ("start_ms", None, NO_BAR), ("vs_bare", "0.8..1.2", OK)]


def test_a_missed_bar_on_an_idle_machine_exits_non_zero(tmp_path):
    code, out, results = run({"a": fake(("speedup", 1.5, "x serial", ">= 1.85"),
                                        ("fine", 1.0, "x", "<= 1.3"))}, tmp_path)
    assert code != 0
    assert "MISSED on an idle machine" in out and "speedup" in out.splitlines()[-1]
    assert results["missed"] == ["speedup"] and results["busy"] is False


def test_a_missed_bar_on_a_busy_machine_says_so_and_exits_0(tmp_path):
    code, out, results = run({"a": fake(("speedup", 1.5, "x serial", ">= 1.85"))}, tmp_path,
                             load=BUSY)
    assert code == 0
    assert "busy" in out.splitlines()[-1]
    assert results["busy"] is True and results["missed"] == ["speedup"]
    assert results["load_average_before"] == list(BUSY) == results["load_average_after"]


def test_busy_means_load_at_or_above_the_usable_cores(tmp_path):
    figures = {"a": fake(("speedup", 1.5, "x serial", ">= 1.85"))}
    assert run(figures, tmp_path, load=(3.9, 0, 0), cores=4)[0] != 0
    assert run(figures, tmp_path, load=(4.0, 0, 0), cores=4)[0] == 0


def test_a_load_of_the_benchs_own_making_does_not_excuse_a_missed_bar(tmp_path):
    """10,000 idle threads push the load average up with no other program running."""
    figures = {"a": fake(("speedup", 1.5, "x serial", ">= 1.85"))}
    code, out, results = run(figures, tmp_path, load=BUSY, foreign_cores=0.1)
    assert code != 0 and results["busy"] is False
    assert "the load was the bench's own" in out.splitlines()[-1]
    assert results["other_programs_cores"] == pytest.approx(0.1, abs=0.02)
    assert run(figures, tmp_path, load=BUSY, foreign_cores=0.6)[0] == 0


def test_the_cpu_accounting_counts_this_process_and_its_children():
    machine_before, mine_before = cpu_seconds()
    child = subprocess.run([sys.executable, "-c", "sum(range(10**7))"], check=True)
    assert child.returncode == 0
    machine_after, mine_after = cpu_seconds()
    assert mine_after - mine_before >= 0.05  # the child's count, reaped
    assert machine_after - machine_before >= mine_after - mine_before - 0.05


def test_a_module_that_raises_is_missed_and_the_run_goes_on(tmp_path):
    code, out, results = run({
        "broken": fake(("first", 1.0, "x", "<= 2"), raises=RuntimeError("no such demo")),
        "unimportable": lambda: (_ for _ in ()).throw(ImportError("cannot import name 'x'")),
        "after": fake(("later", 1.0, "x", "<= 2")),
    }, tmp_path)
    assert code != 0
    by_name = {f["name"]: f for f in results["figures"]}
    assert by_name["first"]["verdict"] == OK and by_name["later"]["verdict"] == OK
    assert by_name["broken (module)"]["verdict"] == MISSED
    assert "RuntimeError: no such demo" in by_name["broken (module)"]["error"]
    assert "ImportError" in by_name["unimportable (module)"]["error"]
    assert set(results["missed"]) == {"broken (module)", "unimportable (module)"}


def test_each_module_starts_on_a_collected_frozen_heap_and_the_process_is_left_unfrozen(tmp_path):
    import gc

    class Cycle:  # garbage an earlier module left: collected before the next module runs
        def __init__(self):
            self.me = self

    seen = {}

    def leave_garbage(report):
        seen["garbage"] = weakref.ref(Cycle())  # alive until a collection frees the cycle
        report("left", 1.0, "x")

    def look(report):
        seen["frozen"] = gc.get_freeze_count()
        seen["collected"] = seen["garbage"]() is None
        report("looked", 1.0, "x")

    gc.disable()  # only the bench may collect in between
    try:
        run({"first": lambda: leave_garbage, "second": lambda: look}, tmp_path)
    finally:
        gc.enable()
    assert seen["frozen"] > 0 and seen["collected"]
    assert gc.get_freeze_count() == 0


def test_an_interrupt_stops_the_run_and_keeps_the_figures_so_far(tmp_path):
    code, out, results = run({"a": fake(("first", 1.0, "x", "<= 2"), raises=KeyboardInterrupt()),
                              "b": fake(("never", 1.0, "x"))}, tmp_path)
    assert code == 130 and results["interrupted"] is True
    assert [f["name"] for f in results["figures"]] == ["first"]
    assert "== bench b" not in out


def test_numpy_scalars_are_numbers(tmp_path):
    numpy = pytest.importorskip("numpy")
    assert parse_bar("== 0").check(numpy.int64(0)) and parse_bar("< 1").check(numpy.float32(0.5))
    code, _, results = run({"a": fake(("lost", numpy.int64(0), "messages", "== 0"),
                                      ("odd", object(), "?"))}, tmp_path)
    assert code == 0 and results["figures"][0]["value"] == 0  # written as a plain JSON number


def test_bad_reports_are_missed_not_crashes(tmp_path):
    code, _, results = run({"a": fake(("nan", math.nan, "x", "<= 1"),
                                      ("bad_bar", 1.0, "x", "within 0.8-1.2"),
                                      ("twice", 1.0, "x"), ("twice", 1.0, "x"))}, tmp_path)
    verdicts = [(f["name"], f["verdict"]) for f in results["figures"]]
    assert verdicts == [("nan", MISSED), ("bad_bar", MISSED), ("twice", NO_BAR),
                        ("twice", MISSED)]
    assert results["figures"][0]["value"] == "nan"  # JSON has no NaN: written as text
    assert "duplicate" in results["figures"][3]["error"]
    assert code != 0


def test_the_results_file_describes_the_machine(tmp_path):
    _, _, results = run({"a": fake(("x", 1, "x"))}, tmp_path)
    cores = results["cores"]
    assert cores["usable"] >= 1 and cores["logical"] >= cores["usable"]
    assert cores["affinity"] is None or len(cores["affinity"]) == cores["usable"]
    for key in ("python", "platform", "gevent", "greenlet", "load_average_mean_1min",
                "module_seconds"):
        assert key in results
    assert results["gevent"] and results["greenlet"]  # both installed with the course


def test_no_load_average_counts_as_idle():
    with LoadMonitor(lambda: (_ for _ in ()).throw(OSError("no load average")), 0.01) as load:
        pass
    assert load.before is None and load.mean is None


def test_modules_run_in_course_order_then_the_others():
    assert order_modules(["zeta", "dask", "crawler", "foundation", "alpha", "coroutines",
                          "pools", "ipc", "processes"]) == [
        "foundation", "processes", "pools", "coroutines", "ipc", "crawler", "dask",
        "alpha", "zeta"]
    assert {"foundation", "processes", "pools", "coroutines"} <= set(discover())


def test_an_unknown_module_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["no_such_module", "--output", str(tmp_path / "r.json")])
    assert exited.value.code == 2
    assert "no_such_module" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_the_cell_timer_times_each_code_cell_and_counts_error_outputs(tmp_path):
    import nbformat

    from bench.cells import _run

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("prose is not timed"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(0.5)"),
        nbformat.v4.new_code_cell("1 / 0"),
        nbformat.v4.new_code_cell("x = 1"),
    ])
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    timings, errors, total = _run(path)
    assert [index for index, _, _ in timings] == [1, 2, 3] and errors == 1
    seconds = {index: s for index, s, _ in timings}
    assert seconds[1] >= 0.5 > seconds[3] and total >= seconds[1]
    assert timings[0][2] == "import time"


@pytest.mark.parametrize(("bar", "value", "margin", "kind"), [
    (">= 1.6", 2.0, 1.25, "ratio"), (">= 1.6", 1.2, 0.75, "ratio"),  # room; missed by 0.75x
    ("> 1", 1.5, 1.5, "ratio"),
    ("<= 1.2", 1.0, 1.2, "ratio"), ("<= 10", 12.5, 0.8, "ratio"), ("< 0.4", 0.2, 2.0, "ratio"),
    ("== 0", 0, 0.0, "difference"), ("== 0", 3, -3.0, "difference"),
    ("== 1", True, 0.0, "difference"), ("!= 0", 2, 2.0, "difference"),
    ("> 0", 0.25, 0.25, "difference"), (">= 1", -0.5, -1.5, "difference"),
    ("0.8..1.2", 1.1, 0.1, "difference"), ("0.8..1.2", 0.7, -0.1, "difference"),
])
def test_a_bar_s_margin_says_how_much_room_the_figure_left(bar, value, margin, kind):
    found = parse_bar(bar).margin(value)
    assert found.kind == kind and found.value == pytest.approx(margin)


@pytest.mark.parametrize("value", [math.nan, math.inf, None, "1.0"])
def test_a_value_that_is_not_a_number_has_no_margin(value):
    assert parse_bar(">= 1").margin(value) is None


def test_every_bar_records_its_margin_whether_it_was_met_and_its_baseline(tmp_path):
    def measure(report):
        report("speedup", 1.9, "x serial", ">= 1.6", baseline="serial, same tasks")
        report("slow_cell", 12.5, "s", "<= 10")  # an absolute bar: no baseline
        report("lost", 0, "messages", "== 0")
        report("shown", 3.0, "x serial", baseline="serial")  # no bar: not in "bars"
        report("broken_bar", 1.0, "x", "about 1", baseline="serial")

    code, out, results = run({"a": lambda: measure}, tmp_path)
    assert [b["figure"] for b in results["bars"]] == ["speedup", "slow_cell", "lost", "broken_bar"]
    speedup, slow, lost, broken = results["bars"]
    assert speedup == {"figure": "speedup", "value": 1.9, "unit": "x serial", "bar": ">= 1.6",
                       "met": True, "margin": pytest.approx(1.1875), "margin_as": "ratio",
                       "baseline": "serial, same tasks"}
    assert slow["met"] is False and slow["margin"] == pytest.approx(0.8)
    assert slow["margin_as"] == "ratio" and slow["baseline"] is None
    assert lost["met"] is True and lost["margin"] == 0 and lost["margin_as"] == "difference"
    assert broken["met"] is False and broken["margin"] is None
    assert {f["name"]: f["baseline"] for f in results["figures"]}["shown"] == "serial"
    json.dumps(results, allow_nan=False)  # every margin is plain JSON
    rows = out[out.index("figure"):].splitlines()
    assert "margin" in rows[0].split()
    assert "1.19x" in rows[2] and "0.80x" in rows[3] and "+0" in rows[4]
    assert code != 0  # slow_cell and broken_bar missed


def _unit_is_not_a_ratio(unit: ast.expr) -> bool:
    """True when a report's unit is written out and does not start with "x" (seconds, a count)."""
    if isinstance(unit, ast.Constant) and isinstance(unit.value, str):
        return not unit.value.startswith("x")
    if isinstance(unit, ast.JoinedStr) and unit.values and isinstance(unit.values[0],
                                                                      ast.Constant):
        return not str(unit.values[0].value).startswith("x")
    return False  # built elsewhere: it may be a ratio


def test_every_ratio_with_a_bar_in_the_bench_names_its_baseline():
    """A ratio's bar means nothing without what it divides by: every module says, in the call."""
    import bench

    unnamed = []
    for path in sorted(Path(bench.__file__).parent.glob("[!_]*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "report"):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            arguments = [*node.args, None, None, None, None]
            unit, bar = keywords.get("unit", arguments[2]), keywords.get("bar", arguments[3])
            no_bar = bar is None or isinstance(bar, ast.Constant) and bar.value is None
            if no_bar or "baseline" in keywords or unit is not None and _unit_is_not_a_ratio(unit):
                continue
            unnamed.append(f"{path.name}:{node.lineno} {ast.unparse(node)[:80]}")
    assert not unnamed, "a ratio's bar without baseline=:\n" + "\n".join(unnamed)
