"""What chapter 09 sends to Dask workers: top-level functions, importable in every worker."""

from __future__ import annotations

import os
import time
from typing import Any

from helpers.course import check_int


def slow_square(x: int, seconds: float = 0.0) -> tuple[int, int]:
    """``(x * x, pid)`` after a wait of `seconds`: which process computed it, and how late."""
    time.sleep(seconds)
    return x * x, os.getpid()


def part_sum(array: Any, index: int, parts: int) -> float:
    """The sum of the `index`-th of `parts` equal slices of `array`."""
    check_int("parts", parts, 1, max(1, len(array)))
    check_int("index", index, 0, parts - 1)
    step = len(array) // parts
    return float(array[index * step:(index + 1) * step].sum())


def uneven_square(x: int) -> tuple[int, int]:
    """``(x * x, pid)``; the first items take longest (20 ms × (4 − x % 4)), so results finish
    in a different order than they were submitted."""
    time.sleep(0.02 * (4 - x % 4))
    return x * x, os.getpid()


def fragile_square(x: int) -> tuple[int, int]:
    """`uneven_square`, except that every fourth item (``x % 4 == 3``) raises ``ValueError``, as a
    task meeting a bad record would."""
    if x % 4 == 3:
        time.sleep(0.01)
        raise ValueError(f"item {x} is a bad record")
    return uneven_square(x)
