"""Checks for chapter 09 (beyond one machine, on Dask).

- 09.1 maps a function that fails on some items over Dask futures without losing the others:
  the answer is a function ``dask_map(client, fn, items)`` returning ``(results, errors)``:
  ``results[i]`` is ``fn(items[i])``, or None where it raised, and ``errors`` maps each such
  index to the exception. ``pool.map`` (and ``client.gather``) would raise the first error and
  lose every result. The check runs it on a 2-worker LocalCluster with a task whose first items
  take longest (results finish out of order) and every fourth of which raises, and says whether
  the results and errors are right, in input order, computed on the workers and at the same time
  (two workers' task-stream spans overlap).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from . import Point, exercise

__all__: list[str] = []  # the checks register themselves with helpers.exercises.check

# 09.1: eight items, so each of the two workers gets several and the order can go wrong.
_ITEMS = list(range(8))
# 09.1: the worker-side module of the task (imported in each worker before the check starts).
_TASKS_MODULE = "helpers.chapters.ch09_beyond_one_machine.tasks"
# 09.1: two tasks on different workers ran "at the same time" when they overlap for at least this
# part of the shorter one. Dask stamps a task's end a little after the client may already have
# its result, so tasks run strictly one after the other show slivers of overlap (a few ms of tasks
# of 40-80 ms here, more on a loaded machine); tasks run in parallel overlap almost wholly.
_SAME_TIME_FRACTION = 0.5
# 09.1: below this, the largest overlap is a sliver: the tasks ran one after the other. Between the
# two, the run cannot tell (a loaded machine stretches the slivers): "inconclusive".
_ONE_AFTER_THE_OTHER_FRACTION = 0.2


def _shape(result: Any) -> str | None:
    """What is wrong with the shape of `dask_map`'s return value, or None when it is right."""
    if not (isinstance(result, tuple) and len(result) == 2):
        return (f"dask_map should return a pair (results, errors), got "
                f"{type(result).__name__}")
    results, errors = result
    if not isinstance(results, list) or len(results) != len(_ITEMS):
        return f"results should be a list of {len(_ITEMS)} entries, one per item, in order"
    if not isinstance(errors, dict):
        return f"errors should be a dict {{index: exception}}, got {type(errors).__name__}"
    if any(type(r).__name__ == "Future" for r in [*results, *errors.values()]):
        return "return values and exceptions, not Futures: ask each future for its result"
    return None


def _largest_overlap(trace: Any) -> float:
    """Of every two tasks computed on different workers, the largest overlap, as a part of the
    shorter task (0 when no two overlap)."""
    runs = [e for e in trace.events if e.kind == "run" and e.end_ns > e.start_ns]
    largest = 0.0
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            if a.lane == b.lane:
                continue
            shared = min(a.end_ns, b.end_ns) - max(a.start_ns, b.start_ns)
            shorter = min(a.end_ns - a.start_ns, b.end_ns - b.start_ns)
            largest = max(largest, shared / shorter)
    return largest


@exercise("09.1", "Map over Dask futures without losing the results of the tasks that worked")
def _port(answer):
    from distributed import get_task_stream

    from helpers.runners.dask import dask_client, quiet_dask, task_stream_trace, worker_clocks

    fragile_square = importlib.import_module(_TASKS_MODULE).fragile_square

    if not callable(answer):
        yield Point(False, f"answer should be a function dask_map(client, fn, items), "
                           f"got {answer!r}")
        return
    bad = {i for i, x in enumerate(_ITEMS) if x % 4 == 3}
    with dask_client(2) as client, quiet_dask():
        client.wait_for_workers(2, timeout=60)
        workers = set(client.run(os.getpid).values())
        client.run(importlib.import_module, _TASKS_MODULE)  # its import is not the student's
        clocks = worker_clocks(client)
        try:
            with get_task_stream(client) as stream:
                result = answer(client, fragile_square, list(_ITEMS))
        except Exception as exc:  # the student's code: its error is the feedback
            yield Point(False, f"dask_map raised {type(exc).__name__}: {exc}. One failing task "
                               "must not lose the others: take each future's result or its "
                               "exception")
            return
    trace = task_stream_trace(stream.data, clocks) if stream.data else None
    wrong = _shape(result)
    if wrong:
        yield Point(False, wrong)
        return
    results, errors = result
    good = [i for i in range(len(_ITEMS)) if i not in bad]
    values = [results[i][0] if isinstance(results[i], tuple) else results[i] for i in good]
    every = [r[0] if isinstance(r, tuple) else r for r in results if r is not None]
    if values == [_ITEMS[i] ** 2 for i in good]:
        yield Point(True, "the results of the tasks that worked are right, in the order of the "
                          "items")
    elif sorted(map(str, every)) == sorted(str(_ITEMS[i] ** 2) for i in good):
        yield Point(False, "the right results, in the wrong order: these came back in the order "
                           "the tasks finished. Keep the order of the items")
    else:
        yield Point(False, "some results of the tasks that worked are not fn(item)")
    if set(errors) == bad and all(isinstance(errors[i], ValueError) for i in bad) and \
            all(results[i] is None for i in bad):
        yield Point(True, f"the {len(bad)} items whose task raised are in errors, with their "
                          "ValueError, and None in results")
    elif len(errors) == len(bad) and all(isinstance(e, ValueError) for e in errors.values()):
        yield Point(False, "the errors are all there, but not at the indices of the items that "
                           "raised (with None at that index of results): key each by its item's "
                           "index, not by when it arrived")
    else:
        yield Point(False, f"errors should map the index of each item whose task raised (here "
                           f"{len(bad)} of them) to its exception, with None at that index of "
                           "results")
    pids = {r[1] for r in results if isinstance(r, tuple) and len(r) == 2}
    if os.getpid() in pids:
        yield Point(False, "some items were computed in this kernel, not on the workers: "
                           "hand fn to the client (client.map or client.submit)")
    elif pids and pids <= workers:
        yield Point(True, f"computed in the worker processes ({len(pids)} of {len(workers)})")
    if trace is not None and trace.lanes():
        overlap = _largest_overlap(trace)
        if overlap >= _SAME_TIME_FRACTION:
            yield Point(True, "the tasks ran at the same time on both workers")
        elif overlap <= _ONE_AFTER_THE_OTHER_FRACTION:
            yield Point(False, "the tasks ran one after the other: no two workers computed at "
                               "once. Submit them all before waiting for any")
        else:
            yield Point.unsure(f"two tasks overlapped for {overlap:.0%} of the shorter one: too "
                               "little to say they ran at the same time, too much for a clock's "
                               "sliver (a busy machine?). Run the check again")
