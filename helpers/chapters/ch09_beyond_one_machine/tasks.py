"""What chapter 09 sends to Dask workers: top-level functions, importable in every worker.

Public because other packages use it by name: exercise 09.1's check (`helpers.exercises.ch09`)
imports this module in each worker before it runs `fragile_square` there. A worker that unpickles
one of these functions imports this module only (see the package docstring)::

    the kernel: client.submit(part_sum, array, i, parts) ──pickled by name──> a worker process:
        import helpers.chapters.ch09_beyond_one_machine.tasks; part_sum(array, i, parts)
"""

from __future__ import annotations

import os
import time
from typing import Any

from helpers.course import check_int
from helpers.workloads import cpu_task

__all__ = ["fragile_square", "part_sum", "timed_cpu_task", "uneven_square"]

# The largest item the exercise's squares accept: the check sends 0..7; any int a reader tries
# by hand is far below this.
_MAX_ITEM = 1_000_000


def part_sum(array: Any, index: int, parts: int) -> float:
    """The sum of the `index`-th of `parts` equal slices of `array`."""
    check_int("parts", parts, 1, max(1, len(array)))
    check_int("index", index, 0, parts - 1)
    step = len(array) // parts
    return float(array[index * step:(index + 1) * step].sum())


def uneven_square(x: int) -> tuple[int, int]:
    """``(x * x, pid)``; the first items take longest (20 ms × (4 − x % 4)), so results finish
    in a different order than they were submitted."""
    check_int("x", x, 0, _MAX_ITEM)
    time.sleep(0.02 * (4 - x % 4))
    return x * x, os.getpid()


def fragile_square(x: int) -> tuple[int, int]:
    """`uneven_square`, except that every fourth item (``x % 4 == 3``) raises ``ValueError``, as a
    task meeting a bad record would."""
    check_int("x", x, 0, _MAX_ITEM)
    if x % 4 == 3:
        time.sleep(0.01)
        raise ValueError(f"item {x} is a bad record")
    return uneven_square(x)


def timed_cpu_task(iterations: int) -> float:
    """Chapter 04's `cpu_task`, timed by the process that runs it: the seconds it computed.

    `measure_overhead` subtracts these from the workers' wall time: what is left is what the
    scheduler or the pool cost, measured on the same tasks in the same run (a task measured apart,
    serially, can run slower or faster than in a worker, and the difference is not overhead).
    """
    started = time.perf_counter()
    cpu_task(iterations)  # checks `iterations`
    return time.perf_counter() - started
