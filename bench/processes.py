"""Chapter 01 figures: what the course's process runner adds to a bare process start, and the
speed-up of two processes on two cores.

Per start method, alternating in one run (load on a shared machine hits both sides alike):

- bare: ``ctx.Process(target=os.getpid)``, ``start()``, ``join()`` written out right here, with
  ``ctx = multiprocessing.get_context(method)`` — no course code on the way. The target is a
  built-in, so a spawned child has nothing of ours to import to find it;
- the helper: `helpers.runners.run_processes` with one task of the same no-op — what every
  chapter-01 demo goes through: a result queue, a recorded start and run span, the reply pickled
  back, the cleanup (terminate stragglers, close the queue, release its semaphores).

``start_join_<method>_helper_vs_bare`` is the helper's wall time per call over the bare
``start()+join()``. Most of what the helper adds is fixed (a queue, a reply, the cleanup: a few
ms), so its bar depends on what it is set against: fork's and the fork server's bare start+join
take a few ms, and the helper may add up to one and a half of those (bar ≤ 2.5); spawn's
~50-100 ms interpreter start must stay within 25 % (bar ≤ 1.25), because what a spawned child
imports to find the helper's target is part of the hatched start span chapter 01 draws. Both
sides share one fork server, started by the course's `mp_context` with its preloaded modules, as
in a reader's kernel.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from statistics import median

from helpers.course import available_start_methods, kernel_safe_start_method, mp_context
from helpers.runners import run_processes, run_serial
from helpers.workloads import cpu_task, iterations_for

__all__ = ["measure"]

# Rounds of alternating measurement, each a few processes per side and start method: ~5 s in all
# with spawn's ~50 ms per process, and medians of 21 samples per figure.
_ROUNDS = 7
_SAMPLES_PER_ROUND = 3
# What the helper may cost beyond a bare start()+join(), per start method (see the docstring).
_BARS = {"fork": "<= 2.5", "forkserver": "<= 2.5", "spawn": "<= 1.25"}
_SPEEDUP_ROUNDS = 5  # of 1 s serial + 0.5 s parallel each
_JOIN_TIMEOUT = 30.0  # a no-op child exits in milliseconds; this only bounds a broken one


def _bare(method: str) -> tuple[float, float]:
    """One bare process: (start() ms, start()+join() ms)."""
    process = multiprocessing.get_context(method).Process(target=os.getpid)
    t0 = time.perf_counter()
    process.start()
    t1 = time.perf_counter()
    process.join(_JOIN_TIMEOUT)
    t2 = time.perf_counter()
    if process.exitcode != 0:
        process.kill()
        raise RuntimeError(f"a bare {method} process ended with exit code {process.exitcode}")
    return (t1 - t0) * 1e3, (t2 - t0) * 1e3


def _helper(method: str) -> tuple[float, float]:
    """One no-op task through `run_processes`: (wall ms from call to return, its start span ms)."""
    started = time.perf_counter()
    run = run_processes(os.getpid, [()], start_method=method, timeout=_JOIN_TIMEOUT)
    elapsed = (time.perf_counter() - started) * 1e3
    if run.failures or run.details["exitcodes"] != [0]:
        raise RuntimeError(f"run_processes ({method}) failed: {run.failures or run.details}")
    (start,) = run.trace.select(kind="start")
    return elapsed, (start.end_ns - start.start_ns) / 1e6


def measure(report) -> None:
    methods = available_start_methods()
    for method in methods:
        mp_context(method)  # the fork server, if it starts here, starts as in a kernel
        _helper(method)  # warm: the fork server starts, the file cache fills
        _bare(method)
    starts = {m: [] for m in methods}
    bare = {m: [] for m in methods}
    helper = {m: [] for m in methods}
    spans = {m: [] for m in methods}
    for _ in range(_ROUNDS):
        for method in methods:
            for _ in range(_SAMPLES_PER_ROUND):
                start_ms, total_ms = _bare(method)
                starts[method].append(start_ms)
                bare[method].append(total_ms)
                elapsed, span = _helper(method)
                helper[method].append(elapsed)
                spans[method].append(span)
    for method in methods:
        report(f"start_{method}_ms", median(starts[method]), "ms bare start()")
        report(f"start_join_{method}_ms", median(bare[method]), "ms bare start()+join()")
        report(f"start_join_{method}_helper_vs_bare", median(helper[method]) / median(bare[method]),
               "x bare start()+join() (run_processes, one no-op task)",
               _BARS[method], baseline=f"start_join_{method}_ms: a bare Process start()+join(), "
                                       "alternated with the helper")
        report(f"start_span_{method}_helper_ms", median(spans[method]),
               "ms (the start span chapter 01 draws: requested → the child's first line)")
    if "fork" in methods and "spawn" in methods:
        report("spawn_vs_fork_per_process", median(bare["spawn"]) / median(bare["fork"]),
               "x fork (bare start()+join())")

    # The speed-up: serial and 2 processes alternating, each side's best of 5 (timeit's rule:
    # other work on the machine only ever adds time, so the fastest run is the least disturbed).
    method = kernel_safe_start_method()
    tasks = [(iterations_for(0.5),)] * 2
    serial, parallel = [], []
    for _ in range(_SPEEDUP_ROUNDS):
        serial.append(run_serial(cpu_task, tasks).seconds)
        parallel.append(run_processes(cpu_task, tasks, start_method=method).seconds)
    report(f"process_speedup_2_processes_{method}", min(serial) / min(parallel),
           f"x serial (best of {_SPEEDUP_ROUNDS} each)", ">= 1.8",
           baseline="run_serial of the same 2 tasks, alternated with the processes")
