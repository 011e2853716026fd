"""Chapter 00b's figures: lost updates with and without a Lock, and the convoy effect.

``python -m bench threads`` measures, side by side in one run:

- the chapter's racing loop (read, ``time.sleep(0)``, write) in 4 threads: updates lost
  without the lock ``> 0``, and with it ``== 0`` (the same threads, increments and loop);
- the convoy: an I/O thread sleeping 1 ms and noting how late it wakes, alone and beside a
  CPU-bound pure-Python thread, at the interpreter's switch interval (shown beside it):
  ``convoy_p99_ratio`` (p99 beside / p99 alone) ``>= 5``. Each side is the median p99 of three
  rounds that alternate alone and beside, so a neighbour's burst on the machine shifts both.
  The same probe with a 0.5 ms switch interval is shown without a bar.
"""

from __future__ import annotations

import statistics
import sys

from helpers.chapters.ch00b_threads import add_locked, add_with_gap, convoy, count_in_threads

__all__ = ["convoy_ratio", "measure", "race_counts"]

# 4 threads × 5,000 read-sleep(0)-write steps: about a second locked, well under one racing.
_THREADS, _INCREMENTS = 4, 5_000
# 300 wake-ups per side (1 ms sleep each; about 2 s beside the neighbour): a p99 is the 4th
# latest, not one outlier. Three rounds, alternating.
_SAMPLES, _PERIOD_S, _ROUNDS = 300, 0.001, 3


def race_counts(threads: int = _THREADS, increments: int = _INCREMENTS) -> tuple[int, int]:
    """``(lost without the lock, lost with it)`` for the chapter's read-sleep(0)-write loop."""
    racy = count_in_threads(add_with_gap, threads, increments)
    locked = count_in_threads(add_locked, threads, increments)
    return racy.lost, locked.lost


def convoy_ratio(samples: int = _SAMPLES, rounds: int = _ROUNDS) -> dict[str, float]:
    """Median p99 (ms) alone, beside a CPU-bound thread, and beside it at 0.5 ms; their ratio;
    and the share of its time the neighbour ran (well under 0.8: other programs took its core)."""
    alone, beside, shorter, shares = [], [], [], []
    for _ in range(rounds):
        alone.append(convoy(samples, _PERIOD_S, neighbour=False).p99_ms)
        run = convoy(samples, _PERIOD_S, neighbour=True)
        beside.append(run.p99_ms)
        shares.append(run.neighbour_cpu_share)
        shorter.append(convoy(samples, _PERIOD_S, neighbour=True,
                              switch_interval_s=0.0005).p99_ms)
    figures = {"alone": statistics.median(alone), "beside": statistics.median(beside),
               "beside at 0.5 ms": statistics.median(shorter),
               "neighbour share": statistics.median(shares)}
    figures["ratio"] = figures["beside"] / max(figures["alone"], 1e-6)
    return figures


def measure(report) -> None:
    lost, lost_locked = race_counts()
    report("thread_race_lost_unlocked", lost,
           f"updates lost of {_THREADS * _INCREMENTS:,} (read, sleep(0), write)", "> 0")
    report("thread_race_lost_locked", lost_locked, "updates lost with a Lock", "== 0")
    figures = convoy_ratio()
    report("convoy_p99_ratio", figures["ratio"], "x the I/O thread's p99 alone", ">= 5",
           baseline="convoy_p99_alone: the same I/O thread with no CPU-bound neighbour")
    report("convoy_switch_interval", sys.getswitchinterval() * 1000, "ms (the switch interval)")
    report("convoy_neighbour_cpu_share", figures["neighbour share"],
           "of its time the CPU-bound neighbour ran (under 0.8: the machine starved it)")
    report("convoy_p99_alone", figures["alone"], "ms late (I/O thread alone, p99)")
    report("convoy_p99_beside_cpu", figures["beside"], "ms late (beside a CPU-bound thread, p99)")
    report("convoy_p99_beside_cpu_0_5ms", figures["beside at 0.5 ms"],
           "ms late (the same at a 0.5 ms switch interval, p99)")
