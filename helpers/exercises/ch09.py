"""Checks for chapter 09 (beyond one machine, on Dask).

- 09.1 ports ``pool.map(fn, items)`` to Dask futures: the answer is a function
  ``dask_map(client, fn, items)`` returning what ``pool.map`` would. The check runs it on a
  2-worker LocalCluster with a task whose first items take longest (results finish out of
  order) and says whether the results are right, in input order, computed on the workers and
  at the same time (two workers' task-stream spans overlap).
"""

from __future__ import annotations

import importlib
import os

from . import Point, exercise

__all__: list[str] = []  # the checks register themselves with helpers.exercises.check

# 09.1: eight items, so each of the two workers gets several and the order can go wrong.
_ITEMS = list(range(8))
# 09.1: the worker-side module of the task (imported in each worker before the check starts).
_TASKS_MODULE = "helpers.chapters.ch09_beyond_one_machine._tasks"
# 09.1: "at the same time" means the two workers' compute spans overlap for at least this part of
# the less busy one's time. Dask's task stream stamps can be a few ms apart from the truth, so
# tasks run strictly one after the other may show a sliver of overlap; parallel ones show most.
_OVERLAP_FRACTION = 0.25


@exercise("09.1", "Port Pool.map to Dask futures")
def _port(answer):
    from distributed import get_task_stream

    from helpers.runners.dask import dask_client, quiet_dask, task_stream_trace, worker_clocks

    uneven_square = importlib.import_module(_TASKS_MODULE).uneven_square

    if not callable(answer):
        yield Point(False, f"answer should be a function dask_map(client, fn, items), "
                           f"got {answer!r}")
        return
    expected = [x * x for x in _ITEMS]
    with dask_client(2) as client, quiet_dask():
        client.wait_for_workers(2, timeout=60)
        workers = set(client.run(os.getpid).values())
        client.run(importlib.import_module, _TASKS_MODULE)  # its import is not the student's
        clocks = worker_clocks(client)
        try:
            with get_task_stream(client) as stream:
                result = answer(client, uneven_square, list(_ITEMS))
        except Exception as exc:  # the student's code: its error is the feedback
            yield Point(False, f"dask_map raised {type(exc).__name__}: {exc}")
            return
    trace = task_stream_trace(stream.data, clocks) if stream.data else None
    if not isinstance(result, list) or len(result) != len(_ITEMS):
        yield Point(False, f"dask_map should return a list of {len(_ITEMS)} results, like "
                           f"pool.map; got {type(result).__name__}"
                           f"{f' of {len(result)}' if hasattr(result, '__len__') else ''}")
        return
    if any(not (isinstance(r, tuple) and len(r) == 2) for r in result):
        yield Point(False, "each result should be what fn returned (a value), not a Future: "
                           "collect the values with client.gather or future.result()")
        return
    values, pids = [r[0] for r in result], {r[1] for r in result}
    if values == expected:
        yield Point(True, "the results are right, in the order of the items")
    elif sorted(values) == sorted(expected):
        yield Point(False, "the right results, in the wrong order: these came back in the "
                           "order the tasks finished. pool.map keeps the order of its items")
    else:
        yield Point(False, "some results are not fn(item)")
    if os.getpid() in pids:
        yield Point(False, "some items were computed in this kernel, not on the workers: "
                           "hand fn to the client (client.map or client.submit)")
    elif pids <= workers:
        yield Point(True, f"computed in the worker processes ({len(pids)} of {len(workers)})")
    lanes = trace.lanes() if trace is not None else []
    if len(lanes) == 2 and trace.overlap_ns(*lanes) >= _OVERLAP_FRACTION * min(
            trace.busy_ns(lane) for lane in lanes):
        yield Point(True, "the tasks ran at the same time on both workers")
    elif lanes:
        yield Point(False, "the tasks ran one after the other: no two workers computed at once. "
                           "Submit them all before waiting for any")
