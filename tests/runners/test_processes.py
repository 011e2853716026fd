"""run_processes' report pipe, under every start method: what a child sends, what it imports,
and what the parent makes of a child that sends nothing, too much, or something unpicklable."""

from __future__ import annotations

import os
import time

import pytest

from helpers.runners import run_processes

pytestmark = pytest.mark.timeout(60)

# Builtins run in the child with nothing of the tests to import (a spawned child would otherwise
# import this module, and pytest with it, to find a test function).
_CHILD_HELPERS_MODULES = "sorted(m for m in __import__('sys').modules if m.startswith('helpers'))"
_KILL_MYSELF = "__import__('os').kill(__import__('os').getpid(), 9)"


def test_a_spawned_child_imports_only_the_small_module_it_runs():
    """The start span chapter 01 draws holds what a spawned child imports: only this much (a
    forked child has all its parent had; a fork server's children, what it preloaded)."""
    run = run_processes(eval, [(_CHILD_HELPERS_MODULES,)], start_method="spawn")
    assert run.values[0] == ["helpers", "helpers.runners", "helpers.runners._process_child",
                             "helpers.timeline", "helpers.timeline._cpu"]


def test_a_large_report_arrives_whole_in_many_reads(start_method):
    # 8 MB: over a hundred pipe-fulls, read while the child is still writing.
    run = run_processes(bytes, [(8_000_000,), (3,)], start_method=start_method)
    assert run.values == [bytes(8_000_000), bytes(3)] and not run.failures


def test_an_unpicklable_return_value_is_a_failure_that_says_so(start_method):
    run = run_processes(eval, [("__import__('threading').Lock()",), ("7",)],
                        start_method=start_method)
    assert run.values == [None, 7] and run.details["exitcodes"] == [0, 0]
    assert "could not be sent back" in run.failures[0].message
    assert run.failures[0].type_name in {"TypeError", "PicklingError"}


def test_a_child_killed_mid_task_is_a_death_noticed_at_once(start_method):
    started = time.perf_counter()
    run = run_processes(eval, [(_KILL_MYSELF,), ("1",)], start_method=start_method, timeout=30)
    assert time.perf_counter() - started < 10  # not the 30 s timeout
    assert run.failures[0].type_name == "ProcessDied"
    assert run.failures[0].message == "killed by SIGKILL" and run.values[1] == 1
    assert [lane for lane in run.trace.lanes()] == [f"process 2 [pid {run.details['pids'][1]}]"]


def test_a_timeout_stops_the_children_and_says_how_many_were_late(start_method):
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="1 of 2 processes"):
        run_processes(time.sleep, [(30,), (0,)], start_method=start_method, timeout=1.0)
    assert time.perf_counter() - started < 10
    assert not [c for c in __import__("multiprocessing").active_children()
                if c.name.startswith("process-")]


def test_the_report_times_the_start_from_the_request_to_the_first_line(start_method):
    before = time.perf_counter_ns()
    run = run_processes(os.getpid, [()], start_method=start_method)
    (start,) = run.trace.select(kind="start")
    (work,) = run.trace.select(kind="run")
    assert before <= start.start_ns < start.end_ns <= work.start_ns <= work.end_ns
    assert run.values == run.details["pids"] == [start.pid]
    assert work.label == "getpid #0"


@pytest.mark.parametrize("bad", ["1", 1.5, True, [0]])
def test_explain_exitcode_takes_exit_codes_only(bad):
    from helpers.runners.processes import explain_exitcode

    with pytest.raises(TypeError, match="exitcode"):
        explain_exitcode(bad)
    assert explain_exitcode(-9) == "killed by SIGKILL"


def test_a_group_runs_different_functions_in_named_lanes_without_start_spans(start_method):
    from helpers.runners import ProcessGroup

    with ProcessGroup(start_method, start_spans=False) as group:
        assert group.start(os.getpid, lane="sender") == 0
        assert group.start(abs, (-3,), lane="receiver") == 1
        run = group.wait(30)
    pids = run.details["pids"]
    assert run.values == [pids[0], 3] and not run.failures
    assert group.lanes() == [f"sender [pid {pids[0]}]", f"receiver [pid {pids[1]}]"]
    assert sorted(run.trace.lanes()) == sorted(group.lanes())
    assert not run.trace.select(kind="start") and len(run.trace.select(kind="run")) == 2


def test_a_group_after_a_timeout_keeps_what_came_and_names_who_did_not(start_method):
    from helpers.runners import ProcessGroup

    died = []
    with ProcessGroup(start_method, lane="worker") as group:
        group.start(time.sleep, (30,))
        group.start(eval, (_KILL_MYSELF,))
        group.start(abs, (-1,))
        with pytest.raises(TimeoutError, match=r"1 of 3 processes .*\(worker-1\)"):
            group.wait(3, on_death=died.append)
        run = group.result()
    assert died == [1]  # told at once, while worker 1 still ran
    assert run.values == [None, None, 1]
    assert run.failures[0].type_name == "NoReport"
    assert str(run.failures[1]) == "ProcessDied: killed by SIGKILL"
    assert group.processes[0].exitcode is not None  # stopped on leaving the block
