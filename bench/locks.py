"""Chapter 03 figures: lost updates without a lock, none with either locking strategy, what a lock
costs per increment, and garbled lines without a print lock — all measured in one run; then each
demo cell of the notebooks (03a_locks, 03b_primitives) at reader sizes (≤ 10 s each), the
deadlock demo ending by its timeout, and the broken-queue demo ending by the kernel's.

Every figure comes from the chapter's own demos (`count_demo`, `print_demo`, `Workers` with the
chapter's workers) on the kernel-safe start method, 2 processes × 100,000 increments as in the
notebook. The strategies alternate in each round, so load on a shared machine hits all of them
alike; costs are medians over rounds.
"""

from __future__ import annotations

import time
from statistics import median

from helpers.chapters import ch03_locks as locks
from helpers.chapters.ch03_locks import Workers, count_demo, print_demo

PROCESSES, INCREMENTS = 2, 100_000  # the chapter's demo: "2–4 processes × 100,000"
# Rounds of (none, synchronized, per increment, batched); the most lost and the median cost count.
_ROUNDS = 5
_PRINT_WORKERS, _PRINT_LINES = 3, 1000  # the notebook's printing demo at reader defaults
# The notebook's other reader defaults: seconds a worker holds a lock, the failure demos' timeout.
_HOLD_S, _TIMEOUT_S = 0.03, 0.5
# The deadlock demo must end by its timeouts: at most this many of them, plus process starts.
_DEADLOCK_TIMEOUTS = 3


def _primitive(fn, make, workers):
    """One primitive demo cell: `make(ctx)` gives the worker arguments of each worker."""
    with Workers() as w:
        for args in make(w.ctx)[:workers]:
            w.add(fn, *args)
        w.run(30)
    return w.trace


def _cells() -> dict:
    """Each demo cell of 03a_locks.ipynb and 03b_primitives.ipynb with the notebooks' reader
    sizes, as they call them."""
    h = _HOLD_S

    def lock_cell(ctx):
        lock = ctx.Lock()
        return [(lock, 3, h, h / 2)] * 3

    def rlock_cell(ctx):
        plain, recursive = ctx.Lock(), ctx.RLock()
        return [(lock, h, _TIMEOUT_S) for lock in (plain, plain, recursive, recursive)]

    def condition_cell():
        with Workers() as w:
            cond, items = w.ctx.Condition(), w.ctx.Value("i", 0, lock=False)
            w.add(locks.produce, cond, items, 6, 2 * h)
            for _ in range(2):
                w.add(locks.consume, cond, items, 3, h)
            w.run(30)

    def event_cell():
        with Workers() as w:
            go = w.ctx.Event()
            w.add(locks.prepare_then_signal, go, 5 * h)
            for _ in range(2):
                w.add(locks.wait_for_signal, go, 2 * h)
            w.run(30)

    return {
        "cell_03_garbled": lambda: print_demo(_PRINT_WORKERS, _PRINT_LINES),
        "cell_03_clean": lambda: print_demo(_PRINT_WORKERS, _PRINT_LINES, locked=True),
        "cell_03_strategies": lambda: locks.compare_strategies(PROCESSES, INCREMENTS),
        "cell_03_alone": lambda: [count_demo(1, INCREMENTS, s) for s in ("none",
                                                                           "per increment")],
        "cell_03_lock": lambda: _primitive(locks.take_turns, lock_cell, 3),
        "cell_03_rlock": lambda: _primitive(locks.nested, rlock_cell, 4),
        "cell_03_semaphore": lambda: _primitive(
            locks.limited, lambda ctx: [(ctx.Semaphore(2), 2, 3 * h)] * 4, 4),
        "cell_03_event": event_cell,
        "cell_03_condition": condition_cell,
        "cell_03_barrier": lambda: _primitive(
            locks.in_phases, lambda ctx: [(b, 3, (i + 1) * h) for b in [ctx.Barrier(3)]
                                          for i in range(3)], 3),
        "cell_03_deadlock": lambda: locks.deadlock_demo(True, hold_s=h, timeout=_TIMEOUT_S),
        "cell_03_lock_order": lambda: locks.deadlock_demo(False, hold_s=h, timeout=_TIMEOUT_S),
        "cell_03_killed_holder": lambda: locks.killed_holder("terminate", timeout=2 * _TIMEOUT_S),
        "cell_03_killed_writer": lambda: locks.killed_writer(timeout=_TIMEOUT_S),
        "cell_03_stopped_holder": lambda: locks.killed_holder("stop", timeout=2 * _TIMEOUT_S),
        "cell_03_panel": lambda: locks.make_panel().run(),
    }


def measure(report) -> None:
    strategies = ("none", "synchronized", "per increment", "batched")
    runs = {s: [] for s in strategies}
    for _ in range(_ROUNDS):
        for strategy in strategies:
            runs[strategy].append(count_demo(PROCESSES, INCREMENTS, strategy))
    expected = PROCESSES * INCREMENTS
    lost = {s: max(r.lost for r in runs[s]) for s in strategies}
    ns = {s: median(r.ns_per_increment for r in runs[s]) for s in strategies}
    report("lost_updates_unlocked", max(r.lost_fraction for r in runs["none"]),
           f"fraction of {expected:,} increments lost ({PROCESSES} processes, no lock, most of "
           f"{_ROUNDS} runs)", "> 0")
    report("lost_updates_synchronized_value", lost["synchronized"] / expected,
           "fraction of increments lost (Value's lock, no get_lock())", "> 0")
    report("lost_updates_lock_per_increment", lost["per increment"], "increments lost (any run)",
           "== 0")
    report("lost_updates_batched", lost["batched"], "increments lost (any run)", "== 0")
    report("ns_per_increment_unlocked", ns["none"], "ns")
    report("ns_per_increment_locked", ns["per increment"], "ns")
    report("ns_per_increment_batched", ns["batched"], "ns")
    unlocked = "ns_per_increment_unlocked: the same counting without a lock, in the same rounds"
    report("locked_vs_unlocked_increment", ns["per increment"] / ns["none"],
           "x unlocked increment", "> 1", baseline=unlocked)
    report("batched_vs_unlocked_increment", ns["batched"] / ns["none"], "x unlocked increment",
           "< 1", baseline=unlocked)
    garbled = max(print_demo(_PRINT_WORKERS, _PRINT_LINES).broken for _ in range(3))
    clean = max(print_demo(_PRINT_WORKERS, _PRINT_LINES, locked=True).broken for _ in range(3))
    report("broken_lines_without_lock", garbled,
           f"of {_PRINT_WORKERS * _PRINT_LINES} lines (most of 3 runs)", "> 0")
    report("broken_lines_with_lock", clean, "lines (any of 3 runs)", "== 0")

    for name, cell in _cells().items():
        started = time.perf_counter()
        cell()
        report(name, time.perf_counter() - started, "s", "<= 10")

    story = locks.deadlock_demo(True, hold_s=_HOLD_S, timeout=_TIMEOUT_S)
    report("deadlock_detected", sum(v for v in story.values if isinstance(v, int)),
           "deadlocks detected (A, B against B, A)", ">= 1")
    report("deadlock_demo_seconds_in_timeouts", story.seconds / _TIMEOUT_S,
           f"x its {_TIMEOUT_S:g} s timeout", f"<= {_DEADLOCK_TIMEOUTS}",
           baseline="the demo's own lock timeout (a setting, not a measurement)")
    broken = locks.killed_writer(timeout=_TIMEOUT_S)
    report("killed_writer_reader_stuck", int(2 in broken.failures),
           "1 = get(timeout) stuck in half a message", "== 1")
    report("killed_writer_seconds", broken.seconds, "s (ends by the kernel's own timeout)", "<= 10")
