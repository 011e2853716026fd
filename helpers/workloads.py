"""Workloads: CPU-bound and I/O-bound tasks, and a calibration that sizes them for this machine.

The tasks are top-level functions with plain arguments, so they pickle under every start method
and can be sent to any worker. CPU tasks take an *amount of work* (loop iterations), not a time:
the same task given to 1 or 8 processes is the same work, so a speed-up is honest. The calibration
turns "about 200 ms" into iterations on the reader's machine, so a demo shows the same picture on a
slow laptop and on a 64-core server::

    >>> n = iterations_for(0.05)    # ~50 ms of pure-Python work here
    >>> _ = cpu_task(n)             # holds the GIL the whole time
    >>> io_task(0.01)               # sleeps: the core is free meanwhile
    0.01
"""

from __future__ import annotations

import time

from helpers.course import check_float, check_int

__all__ = [
    "MAX_ITERATIONS",
    "calibrate",
    "cpu_task",
    "io_task",
    "iterations_for",
    "mixed_task",
]

# Upper bound for one task: about a minute of work on a fast core. Anything larger from a widget or
# a call is a typo, and would hold a reader's kernel far longer than any demo needs.
MAX_ITERATIONS = 2_000_000_000
# The calibration runs this long in total: long enough to average out a timer tick and a cache
# warm-up, short enough to be invisible in a notebook cell.
_CALIBRATION_SECONDS = 0.06
_rate_cache: dict[str, float] = {}


def cpu_task(iterations: int) -> int:
    """Pure-Python arithmetic for `iterations` steps, holding the GIL throughout.

    Returns a checksum, so the work cannot be skipped and results can be compared.
    """
    check_int("iterations", iterations, 0, MAX_ITERATIONS)
    total = 0
    for i in range(iterations):
        # Masked to stay a small int: every iteration costs the same, so a task cut into chunks
        # is the same work as the whole (an unmasked i * i grows and gets slower).
        total = (total * 31 + i) & 0xFFFFF
    return total


def io_task(seconds: float) -> float:
    """Block in a sleep, as a network or disk wait would: the core is free. Returns `seconds`."""
    check_float("seconds", seconds, 0.0, 60.0)
    time.sleep(seconds)
    return seconds


def mixed_task(iterations: int, seconds: float) -> int:
    """Half compute, half wait: a request that parses its input then queries a database."""
    result = cpu_task(iterations)
    io_task(seconds)
    return result


def calibrate(*, refresh: bool = False) -> float:
    """Measure `cpu_task` iterations per second on this core (cached for the process)."""
    if "rate" in _rate_cache and not refresh:
        return _rate_cache["rate"]
    iterations, rates = 20_000, []
    deadline = time.perf_counter() + _CALIBRATION_SECONDS
    while time.perf_counter() < deadline or len(rates) < 3:
        start = time.perf_counter()
        cpu_task(iterations)
        elapsed = time.perf_counter() - start
        rates.append(iterations / max(elapsed, 1e-9))
        if elapsed < 0.005:  # too short to time well: grow the probe
            iterations *= 2
    # The fastest run is the one least disturbed by other work on the machine.
    _rate_cache["rate"] = max(rates)
    return _rate_cache["rate"]


def iterations_for(seconds: float) -> int:
    """How many `cpu_task` iterations take about `seconds` on this machine's core."""
    check_float("seconds", seconds, 0.0, 60.0)
    return max(1, min(MAX_ITERATIONS, round(calibrate() * seconds)))
