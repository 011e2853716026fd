"""Valid arguments for the comparison, the coroutine and Dask runners and chapter 09's demos (see
_fuzz.py)."""

from __future__ import annotations


def baselines() -> dict:
    from distributed import LocalCluster

    from helpers.workloads import cpu_task

    return {
        "run_dask": {"fn": cpu_task, "tasks": [(10,)]},
        "start_cluster": {"cluster_class": LocalCluster},
        "task_stream_trace": {
            "records": [{"worker": "tcp://127.0.0.1:1", "thread": 1, "key": "k",
                         "startstops": ({"action": "compute", "start": 1.0, "stop": 2.0},)}],
            "clocks": {}},
        # by module path: chapters 06 and 07 have functions named run_model too
        "helpers.runners.comparison.run_model": {"model": "serial", "fn": cpu_task,
                                                 "tasks": [(10,)]},
        "run_gevent": {"fn": cpu_task, "tasks": [(10,)]},
        "run_asyncio": {"fn": cpu_task, "tasks": [(10,)]},
        "run_gevent_in_processes": {"fn": cpu_task, "tasks": [(10,)]},
        "measure_overhead": {"client": None, "pool": None, "workers": 2},
        "kill_a_worker": {"cluster": None},
        "compare_locality": {"client": None},
    }
