"""run_serial and run_threads: the kernel's own baselines, with failures as data."""

from __future__ import annotations

import pytest

from helpers.chapters.ch04_pools import fail_on
from helpers.runners import Run, run_serial, run_threads
from helpers.workloads import cpu_task, io_task


def test_serial_runs_one_after_the_other_in_one_lane():
    run = run_serial(cpu_task, [(2_000,), (3_000,)])
    assert isinstance(run, Run) and run.model == "serial" and run.workers == 1
    assert run.values == [cpu_task(2_000), cpu_task(3_000)]
    spans = run.trace.select(kind="run")
    assert len(run.trace.lanes()) == 1 and spans[0].end_ns <= spans[1].start_ns


def test_threads_overlap_their_waits():
    run = run_threads(io_task, [(0.2,)] * 3)
    lanes = run.trace.lanes()
    assert len(lanes) == 3
    # Every two threads were asleep at once for most of a wait: overlap, read off the spans.
    assert all(run.trace.overlap_ns(a, b) > 0.1e9
               for i, a in enumerate(lanes) for b in lanes[i + 1:])


@pytest.mark.parametrize("runner", [run_serial, run_threads])
def test_a_failing_task_is_a_failure_not_an_exception(runner):
    run = runner(fail_on, [(0, 1), (1, 1), (2, 1)])
    assert run.values == [0, None, 4] and set(run.failures) == {1}
    assert run.failures[1].type_name == "ValueError" and "fail_on" in \
        run.failures[1].traceback_text
    with pytest.raises(RuntimeError, match="1 of 3 tasks failed"):
        run.raise_failures()


def test_threads_past_their_timeout_raise():
    with pytest.raises(TimeoutError, match="did not finish"):
        run_threads(io_task, [(1.0,)], timeout=0.1)


def test_one_value_runs_expose_value_and_others_refuse():
    assert run_serial(cpu_task, [(10,)]).value == cpu_task(10)
    with pytest.raises(AttributeError, match="values"):
        _ = run_serial(cpu_task, [(10,), (20,)]).value


def test_check_tasks_refuses_a_bound_below_one_task():
    from helpers.runners.contract import check_tasks

    with pytest.raises(ValueError, match="high must be an integer from 1"):
        check_tasks([(1,)], high=0)
    assert check_tasks([1, (2, 3)], high=2) == [(1,), (2, 3)]
