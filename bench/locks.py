"""Chapter 03 figures: lost updates without a lock, none with either locking strategy, what a lock
costs per increment, and garbled lines without a print lock — all measured in one run.

Every figure comes from the chapter's own demos (`count_demo`, `print_demo`) on the kernel-safe
start method, 2 processes × 100,000 increments as in the notebook. The strategies alternate in
each round, so load on a shared machine hits all of them alike; costs are medians over rounds.
"""

from __future__ import annotations

from statistics import median

from helpers.chapters.ch03_locks import count_demo, print_demo

PROCESSES, INCREMENTS = 2, 100_000  # the chapter's demo: "2–4 processes × 100,000"
# Rounds of (none, synchronized, per increment, batched); the most lost and the median cost count.
_ROUNDS = 5
_PRINT_WORKERS, _PRINT_LINES = 3, 1000  # the notebook's printing demo at reader defaults


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
    report("locked_vs_unlocked_increment", ns["per increment"] / ns["none"],
           "x unlocked increment", "> 1")
    report("batched_vs_unlocked_increment", ns["batched"] / ns["none"], "x unlocked increment",
           "< 1")
    garbled = max(print_demo(_PRINT_WORKERS, _PRINT_LINES).broken for _ in range(3))
    clean = max(print_demo(_PRINT_WORKERS, _PRINT_LINES, locked=True).broken for _ in range(3))
    report("broken_lines_without_lock", garbled,
           f"of {_PRINT_WORKERS * _PRINT_LINES} lines (most of 3 runs)", "> 0")
    report("broken_lines_with_lock", clean, "lines (any of 3 runs)", "== 0")
