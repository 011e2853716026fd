"""Timing helpers shared by the tests that assert a speed-up."""

from __future__ import annotations

import os

import pytest

from helpers.course import usable_cores


def skip_if_busy(ratio: float, what: str, *, at_most: float = 1.3) -> None:
    """Skip, with the figures, when a speed-up fell short on a machine that had no free core.

    A speed-up needs free cores: with the load average at or above the number of cores this
    process may run on (its affinity mask, not the machine's count: a container or `taskset` may
    give it fewer), a low ratio says nothing about the code. On an idle machine (CI) a low ratio
    still fails the test that calls this.
    """
    cores = usable_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if ratio <= at_most and load >= cores:
        pytest.skip(f"{what}: {ratio:.2f}× with load average {load:.1f} on {cores} usable cores")


def busy() -> bool:
    """True when the load average is at or above the cores this process may use."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return load >= usable_cores()
