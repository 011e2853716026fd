"""Checks for chapter 08 (choosing a model).

- 08.1 places a workload of the reader's own on the matrix: the answer is
  ``{"task": a function of no arguments, "threads faster": True | False}``, a prediction of
  whether four threads finish four such tasks clearly sooner than one after the other. The check
  measures it, and says whether the prediction held (with the reader's own figure). A control
  task known to run in parallel in threads (SHA-256 of a large buffer) is measured just before and
  just after: when even it does not gain, the machine had no free core, and the check says so
  instead of judging the prediction.
"""

from __future__ import annotations

import time

from . import Point, exercise

__all__: list[str] = []  # the checks register themselves with helpers.exercises.check

# 08.1: one task must take this long (s): long enough to time well beside a thread's start,
# short enough that the check (serial + threads, up to three times) stays a few seconds.
_TASK_SECONDS = (0.02, 1.0)
_TASKS = 4
# 08.1: "clearly faster" and "clearly not": between the two the machine decided, not the task.
_FASTER, _NOT_FASTER = 1.4, 1.2
# 08.1: an undecided measurement is repeated this many times before the check gives up.
_ATTEMPTS = 3
# 08.1: the control task's length (s): like the reader's, long enough to time.
_CONTROL_SECONDS = 0.05


def _ratio(task, args: tuple = ()) -> tuple[float, str | None]:
    """The speed-up of threads over serial for `_TASKS` calls (the matrix's, from `compare`),
    and the first failure if any."""
    from helpers.runners import compare

    comparison = compare(["serial", "threads"], task, [args] * _TASKS)
    failures = {**comparison.runs["serial"].failures, **comparison.runs["threads"].failures}
    if failures:
        return 0.0, str(next(iter(failures.values())))
    return comparison.speedup("threads"), None


@exercise("08.1", "Your own workload on the matrix: do threads help?")
def _own_workload(answer):
    from helpers.chapters.ch08_choosing.workloads import c_hash, hash_rounds_for
    from helpers.course import usable_cores

    if not isinstance(answer, dict) or {"task", "threads faster"} - set(answer):
        yield Point(False, "answer should be a dict with keys 'task' and 'threads faster'")
        return
    task, predicted = answer["task"], answer["threads faster"]
    if not callable(task):
        yield Point(False, f"'task' should be a function of no arguments, got {task!r}")
        return
    if not isinstance(predicted, bool):
        yield Point(False, f"'threads faster' should be True or False, got {predicted!r}")
        return
    started = time.perf_counter()
    task()
    once = time.perf_counter() - started
    low, high = _TASK_SECONDS
    if not low <= once <= high:
        yield Point(False, f"one call took {once * 1000:.0f} ms; make it take between "
                           f"{low * 1000:.0f} and {high * 1000:.0f} ms so it can be timed")
        return
    yield Point(True, f"one call takes about {once * 1000:.0f} ms")
    if usable_cores() < 2:
        # Not the reader's fault: inconclusive, never ✗ for a right answer on one core (Binder).
        yield Point.unsure("this process may use one core only: no model can run two tasks at "
                           "once here, so the prediction cannot be tested")
        return
    ratio = None
    rounds = hash_rounds_for(_CONTROL_SECONDS)
    for _ in range(_ATTEMPTS):
        # The control just before and just after: the machine had free cores all along.
        before, _ = _ratio(c_hash, (rounds,))
        ratio, failure = _ratio(task)
        if failure:
            yield Point(False, f"the task raised {failure}")
            return
        after, _ = _ratio(c_hash, (rounds,))
        control = min(before, after)
        if control >= _FASTER and (ratio >= _FASTER or ratio <= _NOT_FASTER):
            break
    else:
        if control < _FASTER:
            yield Point.unsure(f"even a task known to run in parallel in threads "
                               f"gained only {control:.2f}× — this machine has no free core right "
                               "now (other programs are busy). Try again later")
        else:
            yield Point.unsure(f"{_TASKS} threads took {ratio:.2f}× less time than "
                               "serial, three times in a row: neither clearly faster nor not. "
                               "Try a task that runs longer")
        return
    measured = ratio >= _FASTER
    if measured == predicted:
        yield Point(True, f"you predicted {'a' if predicted else 'no'} speed-up from threads, "
                          f"and measured {ratio:.2f}×")
    else:
        yield Point(False, f"measured {ratio:.2f}× with {_TASKS} threads: not what you predicted. "
                           "Does your task hold the GIL while it works (pure Python), or spend "
                           "its time in C code that releases it, or waiting?")
