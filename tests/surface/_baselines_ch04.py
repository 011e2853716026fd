"""Valid arguments for chapter 04's public callables that need an object no default gives (see
_fuzz.py)."""

from __future__ import annotations


class _KernelPool:
    """Stands in for a multiprocessing Pool: `map_async` computes in the kernel, at once."""

    def map_async(self, fn, items, chunksize=None):
        values = [fn(item) for item in items]

        class _Done:
            def get(self, timeout=None):
                return values

        return _Done()


def baselines() -> dict:
    from helpers.timeline import Trace

    return {
        "time_job": {"pool": _KernelPool(), "total": 1000, "serial_fraction": 0.2, "workers": 2},
        # the views of a trace: an empty one is valid (no worker computed)
        "core_seconds": {"trace": Trace()},
        "work_per_worker": {"trace": Trace()},
        "workers_computing": {"trace": Trace(), "seconds": 1.0},
    }
