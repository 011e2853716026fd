"""Timing helpers shared by the tests that assert a speed-up."""

from __future__ import annotations

import os

import pytest


def skip_if_busy(ratio: float, what: str, *, at_most: float = 1.3) -> None:
    """Skip, with the figures, when a speed-up fell short on a machine that had no free core.

    A speed-up needs free cores: with the load average at or above the core count (other programs
    share this machine), a low ratio says nothing about the code. On an idle machine (CI) a low
    ratio still fails the test that calls this.
    """
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if ratio <= at_most and load >= cores:
        pytest.skip(f"{what}: {ratio:.2f}× with load average {load:.1f} on {cores} cores")
