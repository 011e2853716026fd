"""The runner contract: what every runner takes and promises, in one place.

Every runner (serial, threads, processes, pools, coroutines, Dask) takes its tasks as a list of
argument tuples, checked by `check_tasks`, and bounds every wait by a timeout that defaults to
`DEFAULT_TIMEOUT_SECONDS`; none runs more than `MAX_TASKS` tasks::

    run_xxx(fn, tasks, ..., timeout=DEFAULT_TIMEOUT_SECONDS) -> Run
        tasks = check_tasks(tasks)        [(args...), ...], 1 to MAX_TASKS of them
        every join / get / wait           bounded by timeout
"""

from __future__ import annotations

from collections.abc import Sequence

from helpers.course import check_int

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "MAX_TASKS", "check_tasks"]

# The longest any demo here should need is about 10 s of work; a machine shared with other jobs can
# be several times slower. A wait longer than this means something is stuck, and the reader should
# get an error rather than a cell that never finishes.
DEFAULT_TIMEOUT_SECONDS = 120.0
# Tens of thousands of tasks are plenty for any demo; more only fill memory with spans.
MAX_TASKS = 100_000


def check_tasks(tasks: object, high: int = MAX_TASKS, name: str = "tasks") -> list[tuple]:
    """`tasks` as a list of argument tuples: each entry a tuple/list of arguments, or one argument.

    Raises ValueError naming `name` for an empty or too long sequence, or one that is not a
    sequence at all (a string would otherwise be read letter by letter).
    """
    high = check_int("high", high, 1, MAX_TASKS)
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence):
        raise ValueError(f"{name} must be a list of argument tuples (1 to {high} of them), "
                         f"got {type(tasks).__name__}")
    check_int(f"number of {name}", len(tasks), 1, high)
    return [tuple(t) if isinstance(t, (tuple, list)) else (t,) for t in tasks]
