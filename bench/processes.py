"""Chapter 01 figures: process start cost (the helper against a bare Process) and the speed-up.

Every figure is measured side by side in one run: the helper's start figures and a bare
``Process(target=os.getpid).start()`` / ``.join()`` alternate: load on a shared machine hits both.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from statistics import median

from helpers.chapters.ch01_processes import measure_start_costs
from helpers.course import available_start_methods, kernel_safe_start_method
from helpers.runners import run_processes, run_serial
from helpers.workloads import cpu_task, iterations_for

# Rounds of interleaved measurement; each round is a few processes per start method.
_ROUNDS = 5
_SAMPLES_PER_ROUND = 3


def _bare(method: str) -> tuple[float, float]:
    process = multiprocessing.get_context(method).Process(target=os.getpid)
    t0 = time.perf_counter()
    process.start()
    t1 = time.perf_counter()
    process.join(30)
    return (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3


def measure(report) -> None:
    methods = available_start_methods()
    bare = {m: ([], []) for m in methods}
    helper = {m: ([], []) for m in methods}
    for method in methods:
        _bare(method)  # warm: the fork server starts, the file cache fills
    for _ in range(_ROUNDS):
        for method in methods:
            for _ in range(_SAMPLES_PER_ROUND):
                start, join = _bare(method)
                bare[method][0].append(start)
                bare[method][1].append(join)
            cost = measure_start_costs([method], samples=_SAMPLES_PER_ROUND)[0]
            helper[method][0].append(cost.start_ms)
            helper[method][1].append(cost.join_ms)
    for method in methods:
        start_ratio = median(helper[method][0]) / median(bare[method][0])
        total_ratio = ((median(helper[method][0]) + median(helper[method][1]))
                       / (median(bare[method][0]) + median(bare[method][1])))
        report(f"start_{method}_helper_vs_bare", start_ratio, "x bare start()",
               "within 0.8-1.2")
        report(f"start_join_{method}_helper_vs_bare", total_ratio, "x bare start()+join()",
               "within 0.8-1.2")
        report(f"start_{method}_ms", median(bare[method][0]), "ms start()")
        report(f"join_{method}_ms", median(bare[method][1]), "ms join()")
    if "fork" in methods and "spawn" in methods:
        spawn = median(bare["spawn"][0]) + median(bare["spawn"][1])
        fork = median(bare["fork"][0]) + median(bare["fork"][1])
        report("spawn_vs_fork_per_process", spawn / fork, "x fork")

    method = kernel_safe_start_method()
    tasks = [(iterations_for(0.5),)] * 2
    ratios = []
    for _ in range(3):
        serial = run_serial(cpu_task, tasks).seconds
        ratios.append(serial / run_processes(cpu_task, tasks, start_method=method).seconds)
    report(f"process_speedup_2_processes_{method}", median(ratios), "x serial", ">= 1.8")
