"""Valid arguments for chapter 08's and chapter 09's public callables with required parameters
(see _fuzz.py): each is called with one bad value at a time in place of these."""

from __future__ import annotations


def baselines() -> dict:
    import numpy as np

    return {
        "measure_row": {"workload": "I/O waits", "tasks": [(0.001,)], "models": ["serial"]},
        "part_sum": {"array": np.arange(8.0), "index": 0, "parts": 2},
    }
