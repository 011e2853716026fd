"""Lost updates: several processes add to one shared counter, and some of the additions vanish.

Data flow of `count_demo`::

    the kernel                                        worker i (one process each)
    ----------                                        ---------------------------
    counter = ctx.Value("q", 0, lock=...)   (8 bytes of shared memory, maybe with an RLock)
    Workers: add(_count_into, counter, strategy, n)
                                                      (all start together, at a barrier)
                                                      t0 = perf_counter_ns()
                                                      add_…(counter, n)  # the strategy's loop
                                                      t1: one "run" span, (t1 - t0) / n back
    final = counter.value; lost = processes × n − final: CountResult

The strategies (`STRATEGIES`), each a short function the notebook prints:

- "none": ``counter.value += 1`` on a ``Value(lock=False)``: a read, an add, a write; another
  process can write between this one's read and write, and one of the two additions is lost;
- "synchronized": the same line on a ``Value`` with its lock: the read takes the lock and lets it
  go, the write takes it again — the window between them is still open;
- "per increment": ``with counter.get_lock(): counter.value += 1`` — nothing lost, a lock
  round trip per increment;
- "batched": count in a local variable, then one locked add at the end — nothing lost, fast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from helpers.course import check_choice, check_int, check_start_method, check_timeout
from helpers.timeline import Trace

from .workers import MAX_WORKERS, Workers, checked

__all__ = [
    "MAX_INCREMENTS",
    "STRATEGIES",
    "CountResult",
    "add_batched",
    "add_locked",
    "add_plain",
    "compare_strategies",
    "count_demo",
]

STRATEGIES = ("none", "synchronized", "per increment", "batched")
# Increments per process: 10**6 locked increments take several seconds on a busy 2-core machine
# (a lock round trip is ~1 µs uncontended, more when contended); more would break the 10 s cell.
MAX_INCREMENTS = 1_000_000
# Below this share of time spent counting side by side, a run of an unlocked strategy that lost
# (almost) nothing says so: the processes then mostly took turns (started apart on a busy
# machine), and a loss of 0 without a lock proves nothing.
_SIDE_BY_SIDE = 0.5
_UNLOCKED = ("none", "synchronized")


@checked(increments=(0, MAX_INCREMENTS))
def add_plain(counter, increments):
    """counter.value += 1, `increments` times, with no lock of our own."""
    for _ in range(increments):
        counter.value += 1


@checked(increments=(0, MAX_INCREMENTS))
def add_locked(counter, increments):
    """The same, holding the Value's own lock around each read-add-write."""
    for _ in range(increments):
        with counter.get_lock():
            counter.value += 1


@checked(increments=(0, MAX_INCREMENTS))
def add_batched(counter, increments):
    """Count locally (no sharing), then one locked add of the total."""
    local = 0
    for _ in range(increments):
        local += 1
    with counter.get_lock():
        counter.value += local


_LOOPS = {"none": add_plain, "synchronized": add_plain, "per increment": add_locked,
          "batched": add_batched}


def _count_into(rec, counter, strategy: str, increments: int) -> float:
    """Run the strategy's loop, timed as one span; return nanoseconds per increment."""
    loop = _LOOPS[strategy]
    start = time.perf_counter_ns()
    loop(counter, increments)
    end = time.perf_counter_ns()
    rec.add(f"{increments:,} increments ({strategy})", "run", start, end)
    return (end - start) / increments


@dataclass
class CountResult:
    """One run of `processes` × `increments` additions to one shared counter."""

    strategy: str
    processes: int
    increments: int
    final: int
    ns_per_increment: float  # mean over the processes of their loop time / increments
    seconds: float  # from the first process's start of counting to the last one's end
    trace: Trace = field(repr=False, default_factory=Trace)
    # (start, end) in perf_counter_ns of the time two or more processes were counting at once,
    # or None if they never were: only then can one process write between another's read and
    # its write.
    together_ns: tuple[int, int] | None = None
    together_seconds: float = 0.0  # how long, in all, two or more were counting at once

    @property
    def together_fraction(self) -> float:
        """The share of the counting time during which two or more processes counted at once."""
        return self.together_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def expected(self) -> int:
        return self.processes * self.increments

    @property
    def lost(self) -> int:
        return self.expected - self.final

    @property
    def lost_fraction(self) -> float:
        return self.lost / self.expected

    def __str__(self) -> str:
        line = (f"{self.strategy:>13}: {self.final:>9,} of {self.expected:>9,} counted, "
                f"{self.lost:>9,} lost ({self.lost_fraction:6.1%}), "
                f"{self.ns_per_increment:7.1f} ns per increment, {self.seconds * 1e3:6.0f} ms")
        if (self.strategy in _UNLOCKED and self.processes > 1 and self.lost_fraction < 0.01
                and self.together_fraction < _SIDE_BY_SIDE):
            line += (f" — but their counting overlapped for only {self.together_fraction:.0%} "
                     "of the time: run again, or with more increments")
        return line


def count_demo(processes: int = 2, increments: int = 100_000, strategy: str = "none", *,
               start_method: str | None = None, timeout: float = 60.0) -> CountResult:
    """`processes` workers each add 1 to one shared counter `increments` times, at once."""
    check_int("processes", processes, 1, MAX_WORKERS)
    check_int("increments", increments, 1, MAX_INCREMENTS)
    check_choice("strategy", strategy, STRATEGIES)
    start_method = check_start_method(start_method)
    check_timeout("timeout", timeout)
    with Workers(start_method) as w:
        counter = w.ctx.Value("q", 0, lock=strategy != "none")
        for _ in range(processes):
            w.add(_count_into, counter, strategy, increments)  # the strategy's loop, timed
        run = w.run(timeout)
        final = counter.value
    trace = run.trace
    spans = trace.select(kind="run")
    seconds = (max(e.end_ns for e in spans) - min(e.start_ns for e in spans)) / 1e9
    per = sum(run.values) / processes
    window, together = _together(spans)
    return CountResult(strategy, processes, increments, final, per, seconds, trace, window,
                       together / 1e9)


def _together(spans) -> tuple[tuple[int, int] | None, int]:
    """((first, last) instant two or more spans were open at once, or None; total ns of it)."""
    edges = sorted([(e.start_ns, 1) for e in spans] + [(e.end_ns, -1) for e in spans],
                   key=lambda edge: (edge[0], edge[1]))  # an end before a start at the same ns
    open_now, first, last, total, since = 0, None, None, 0, 0
    for ns, step in edges:
        if open_now >= 2:
            total += ns - since
            last = ns
        open_now += step
        since = ns
        if open_now >= 2 and first is None:
            first = ns
    window = None if first is None or last is None or last <= first else (first, last)
    return window, total


def compare_strategies(processes: int = 2, increments: int = 100_000, *,
                       strategies=STRATEGIES, start_method: str | None = None) -> list[CountResult]:
    """`count_demo` once per strategy, same sizes, one after the other."""
    if isinstance(strategies, str) or not strategies:
        raise ValueError(f"strategies must be a non-empty list drawn from {STRATEGIES}, "
                         f"got {strategies!r}")
    for strategy in strategies:
        check_choice("each of strategies", strategy, STRATEGIES)
    check_int("processes", processes, 1, MAX_WORKERS)
    check_int("increments", increments, 1, MAX_INCREMENTS)
    start_method = check_start_method(start_method)
    return [count_demo(processes, increments, s, start_method=start_method) for s in strategies]
