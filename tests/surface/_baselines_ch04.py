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
    return {
        "time_job": {"pool": _KernelPool(), "total": 1000, "serial_fraction": 0.2, "workers": 2},
    }
