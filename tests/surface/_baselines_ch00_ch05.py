"""Valid arguments for chapters 00, 00b, 01, 04 and 05's public callables with required parameters
(see _fuzz.py)."""

from __future__ import annotations


def baselines() -> dict:
    import tempfile
    from pathlib import Path

    from matplotlib.figure import Figure

    from helpers.timeline import Trace

    script = Path(tempfile.mkdtemp(prefix="cc-fuzz-")) / "noop.py"
    script.write_text("pass\n", encoding="utf-8")
    no_progress = lambda *a: None  # noqa: E731
    ch01_demo = {"fig": Figure(), "progress": no_progress, "processes": 1, "task_seconds": 0.01,
                 "start_method": None}
    ch04_demo = {"fig": Figure(), "progress": no_progress, "workers": 1, "tasks": 2,
                 "task_ms": 1.0, "chunksize": 0, "kind": "Pool.map", "start_method": None}
    return {
        "run_script": {"path": str(script)},
        "start_grandchild": {"results": None},  # ch01 process targets: checked before any work
        "waits": {"ready": None},
        "parent_with_daemon": {"results": None, "path": str(script.with_suffix(".beat"))},
        "stderr_to_file": {"path": str(script.with_suffix(".err")), "target": print},
        "check_shape": {"shape": (2, 2)},  # ch02's shape check: a small array fits anywhere
        "helpers.chapters.ch01_processes.demo": ch01_demo,
        "helpers.chapters.ch01_processes.speedup.demo": ch01_demo,
        "helpers.chapters.ch04_pools.demo": ch04_demo,
        "helpers.chapters.ch04_pools.panel.demo": ch04_demo,
        "beside_ticker": {"work": no_progress},
        "join_all": {"glets": []},
        "spawn_named": {"name": "lane", "function": no_progress},
        "traced": {"body": no_progress},
        "sleep_in_greenlets": {"sleep": no_progress, "durations": [0.001]},
        "alive_counts": {"recording": Trace()},
        "with_waits": {"recording": Trace()},
        "plot_sleepers": {"run": _sleepers_run(), "axes": Figure().subplots(2, 1)},
        "load_function": {"answer": str(script), "name": "f", "params": 1},
        # 05d (asyncio): a port on this machine where nothing listens; a coroutine that returns.
        "fetch_page": {"url": "http://127.0.0.1:9/page/0"},
        "crawl_pages": {"start_url": "http://127.0.0.1:9/page/0"},
        "run_in_thread": {"coro_fn": _returns},
        "plot_tasks": {"recordings": {"empty": Trace()}, "axes": [Figure().subplots()]},
        **_ch00b_baselines(),
    }


def _ch00b_baselines() -> dict:
    from helpers.chapters.ch00b_threads import ConvoyResult, add_bare
    from helpers.timeline import Trace

    return {
        "count_in_threads": {"add": add_bare, "threads": 1, "increments": 1},
        "convoy": {"samples": 1, "period_s": 0.0001},
        "plot_convoy": {"result": ConvoyResult(False, 0.005, [0.1], Trace())},
    }


async def _returns() -> None:
    return None


def _sleepers_run():
    from helpers.chapters.ch05_coroutines import sleepers

    return sleepers(10, 0.0)
