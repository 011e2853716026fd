"""run_pool over every pool kind: every result in input order, who ran which task, failures."""

from __future__ import annotations

import pytest

from helpers.chapters.ch04_pools import fail_on
from helpers.runners import POOL_KINDS, default_chunksize, run_pool
from helpers.workloads import cpu_task

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("kind", POOL_KINDS)
def test_every_kind_returns_every_result_in_input_order(kind):
    items = [(n,) if kind == "Pool.starmap" else n for n in range(100, 1_300, 100)]
    run = run_pool(cpu_task, items, kind=kind, workers=2)
    assert run.values == [cpu_task(n) for n in range(100, 1_300, 100)]
    assert sorted(run.details["completion_order"]) == list(range(12))
    assert sum(run.tasks_per_lane().values()) == 12 and run.workers == 2


def test_pool_map_reports_the_chunksize_it_used():
    run = run_pool(cpu_task, [10] * 80, kind="Pool.map", workers=2)
    assert run.details["chunksize"] == default_chunksize(80, 2) == 10


def test_a_task_exception_propagates_unless_captured():
    with pytest.raises(ValueError, match="task 2"):
        run_pool(fail_on, [(i, 2) for i in range(4)], workers=2)
    run = run_pool(fail_on, [(i, 2) for i in range(4)], workers=2, capture_failures=True)
    assert run.values == [0, 1, None, 9] and set(run.failures) == {2}


def test_a_task_that_records_its_own_spans_keeps_them_and_returns_its_value():
    from helpers.chapters.ch00_start_here import chunked_cpu_task

    run = run_pool(chunked_cpu_task, [(20_000, 2_000, "t0"), (20_000, 2_000, "t1")], workers=2)
    assert run.values == [chunked_cpu_task(20_000, 2_000, "t").value] * 2
    labels = {e.label for e in run.trace.select(kind="run")}
    assert labels <= {"t0", "t1"} and len(run.trace.select(kind="run")) >= 2
