"""Chapter 00b — threads: lost updates under the GIL, a Lock, and the convoy effect, measured.

The notebook ``00b_threads`` writes the basic threading API out in its cells; what it runs from
here (the racing loops, the I/O probe and its CPU-bound neighbour) is shown with ``show_source``,
because the tests, the panel and ``bench/threads.py`` run the same code::

    count_in_threads(add, threads, increments)          convoy(samples, period_s, neighbour)
      Counter() ─┬─> Thread(add, counter) ─┐              Thread(spin_until) ── run span ───┐
                 ├─> Thread(add, counter) ─┤ join(t)      Thread(wake_up_lateness) ─ io/wait ┤
                 └─> ...                   ┘              (sleep 1 ms, note how late it woke) │
      RaceResult(expected, counted, lost, trace)          ConvoyResult(p50, p99, trace) <─────┘

Each thread records its own spans (`Recorder.for_thread`), so the timelines are real events.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from helpers.course import QUICK, check_callable, check_choice, check_float, check_int
from helpers.timeline import Recorder, Trace, plot_timeline

# The loops (`add_with_gap`, `add_with_call`, `add_bare`, `add_locked`, `plus_one`) and the two
# thread bodies (`wake_up_lateness`, `spin_until`) are the lesson's few lines, shown on the page
# as they are: they run only inside `count_in_threads` and `convoy`, which check every number
# before a thread starts, so they carry no checks of their own and stay out of `__all__`.
__all__ = [
    "MAX_INCREMENTS",
    "MAX_THREADS",
    "NEIGHBOUR_SHARE_NEEDED",
    "VARIANTS",
    "ConvoyResult",
    "Counter",
    "RaceResult",
    "convoy",
    "count_in_threads",
    "make_panel",
    "plot_convoy",
]

# What the notebook may call without showing it (tests/test_code_on_page.py): nothing. Every
# loop, the thread starter and the convoy probe are shown on the page; `make_panel` and
# `plot_convoy` (a view) are plumbing by their names.
__plumbing__: tuple[str, ...] = ()

MAX_THREADS = 16  # more threads than this shows nothing new on a laptop, only slower cells
MAX_INCREMENTS = 1_000_000  # a racing loop of this size takes seconds; more is a mistake
# The longest a demo waits for its threads: far beyond any reader default (well under 10 s).
_TIMEOUT_SECONDS = 60.0
# The probe sleeps at most this long per sample, and takes at most this many samples.
_MAX_PERIOD_S, _MAX_SAMPLES = 0.05, 5_000
# sys.setswitchinterval accepts any positive float; below 10 µs a thread does little but switch.
# A neighbour that ran less than this share of its time was starved of a core by other programs:
# it then waits for the GIL more than it holds it, and the I/O thread finds the GIL free — no
# convoy to see. On a quiet machine it runs about 95 % of the time (it waits only for the probe's
# short turns).
NEIGHBOUR_SHARE_NEEDED = 0.8
_MIN_SWITCH_S, _MAX_SWITCH_S = 1e-5, 0.1
# A sleep(0) step hands the GIL over, tens of µs with 4 to 8 threads: past this many per thread a
# panel run takes more than a few seconds (8 threads locked: about 3 s at 5,000 each on a slow
# core). The call and bare loops go to 300,000 (a few tenths of a second).
_PANEL_SLEEP_INCREMENTS = 5_000


class Counter:
    """One shared number: the threads read and write ``value``."""

    def __init__(self) -> None:
        self.value = 0


def add_with_gap(counter: Counter, increments: int) -> None:
    """Read, let another thread run, write: loses updates whenever two threads interleave."""
    for _ in range(increments):
        value = counter.value  # read
        time.sleep(0)  # a blocking call: this thread lets go of the GIL here
        counter.value = value + 1  # write: what others added since the read is overwritten


def plus_one(n: int) -> int:
    return n + 1


def add_with_call(counter: Counter, increments: int) -> None:
    """Read, call a Python function, write: the call is a point where threads may switch."""
    for _ in range(increments):
        counter.value = plus_one(counter.value)


def add_bare(counter: Counter, increments: int) -> None:
    """A bare ``+= 1``: read, add and write with no switch point between them on 3.10+."""
    for _ in range(increments):
        counter.value += 1


def add_locked(counter: Counter, increments: int, lock: threading.Lock) -> None:
    """`add_with_gap` with the read and the write inside one lock: nothing is lost."""
    for _ in range(increments):
        with lock:
            value = counter.value
            time.sleep(0)  # other threads may run now, but none may enter this block
            counter.value = value + 1


VARIANTS: dict[str, Callable[..., None]] = {
    "read, sleep(0), write": add_with_gap,
    "read, call, write": add_with_call,
    "counter.value += 1": add_bare,
    "locked read, sleep(0), write": add_locked,
}


@dataclass
class RaceResult:
    """What `count_in_threads` counted: expected and counted additions, and the recording."""

    variant: str
    threads: int
    expected: int
    counted: int
    seconds: float
    trace: Trace

    @property
    def lost(self) -> int:
        return self.expected - self.counted

    def __str__(self) -> str:
        return (f"{self.variant}: {self.threads} threads counted {self.counted:,} of "
                f"{self.expected:,} — {self.lost:,} lost, in {self.seconds:.2f} s")


def count_in_threads(add: Callable[..., None], threads: int, increments: int) -> RaceResult:
    """Start `threads` threads running ``add(counter, increments)`` on one `Counter`; count."""
    check_callable("add", add)
    check_int("threads", threads, 1, MAX_THREADS)
    check_int("increments", increments, 0, MAX_INCREMENTS)
    counter, lock, recordings = Counter(), threading.Lock(), []
    extra = (lock,) if add is add_locked else ()

    def body():  # one thread: its span on the timeline, around the loop it runs
        rec = Recorder.for_thread(cpus=False)
        with rec.span("adding", "run"):
            add(counter, increments, *extra)
        recordings.append(rec.recording())  # list.append is atomic under the GIL

    workers = [threading.Thread(target=body, name=f"adder {i}") for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=_TIMEOUT_SECONDS)
    if any(worker.is_alive() for worker in workers):
        raise RuntimeError(f"a thread was still adding after {_TIMEOUT_SECONDS:.0f} s")
    seconds = time.perf_counter() - started
    trace = Trace()
    for recording in recordings:
        trace.extend(recording)
    name = next((k for k, v in VARIANTS.items() if v is add), getattr(add, "__name__", "add"))
    return RaceResult(name, threads, threads * increments, counter.value, seconds, trace)


def wake_up_lateness(samples: int, period_s: float, rec: Recorder) -> list[int]:
    """The I/O thread: sleep `period_s`, note how late it woke (ns), `samples` times."""
    period_ns, late = round(period_s * 1e9), []
    for _ in range(samples):
        asleep = time.perf_counter_ns()
        time.sleep(period_s)  # releases the GIL; to go on, this thread must take it back
        woke = time.perf_counter_ns()
        due = min(asleep + period_ns, woke)
        rec.add("sleeping", "io", asleep, due)
        rec.add("late: waiting for the GIL (or a core)", "wait", due, woke)
        late.append(woke - due)
    return late


def spin_until(stop: threading.Event, rec: Recorder) -> int:
    """The CPU-bound neighbour: pure-Python arithmetic until `stop` is set."""
    with rec.span("computing", "run"):
        n = 0
        while not stop.is_set():
            n += 1
    return n


@dataclass
class ConvoyResult:
    """How late the I/O thread woke, in ms: the median and the 99th percentile."""

    neighbour: bool
    switch_interval_s: float
    late_ms: list[float]
    trace: Trace
    # The neighbour's CPU time over its wall time (None alone). A neighbour the OS starved of a
    # core (a busy machine) leaves the GIL free, and the I/O thread is then not late: no convoy.
    neighbour_cpu_share: float | None = None

    @property
    def starved(self) -> bool:
        """The neighbour got too little of a core to show a convoy (a busy machine)."""
        share = self.neighbour_cpu_share
        return share is not None and share < NEIGHBOUR_SHARE_NEEDED

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.late_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.late_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]

    def __str__(self) -> str:
        beside = "beside a CPU-bound thread" if self.neighbour else "alone"
        text = (f"I/O thread {beside} (switch interval {self.switch_interval_s * 1000:.1f} "
                f"ms): woke late by p50 {self.p50_ms:.3f} ms, p99 {self.p99_ms:.3f} ms")
        if self.neighbour_cpu_share is not None:
            text += f"; the CPU thread ran {self.neighbour_cpu_share:.0%} of the time"
        if self.starved:
            text += " (other programs took its core: a convoy cannot show now)"
        return text



def convoy(samples: int = 100, period_s: float = 0.001, neighbour: bool = True,
           switch_interval_s: float | None = None) -> ConvoyResult:
    """Run the I/O probe alone or beside `spin_until`, with `switch_interval_s` (None: as is)."""
    check_int("samples", samples, 1, _MAX_SAMPLES)
    check_float("period_s", period_s, 0.0001, _MAX_PERIOD_S)
    check_choice("neighbour", neighbour, (True, False))
    if switch_interval_s is not None:
        check_float("switch_interval_s", switch_interval_s, _MIN_SWITCH_S, _MAX_SWITCH_S)
    previous, stop, late, recordings = sys.getswitchinterval(), threading.Event(), [], []
    share: list[float] = []

    def probe():
        rec = Recorder.for_thread(cpus=False)
        late.extend(wake_up_lateness(samples, period_s, rec))
        recordings.append(rec.recording())

    def hog():
        rec, cpu, wall = Recorder.for_thread(cpus=False), time.thread_time(), time.perf_counter()
        spin_until(stop, rec)
        share.append((time.thread_time() - cpu) / max(time.perf_counter() - wall, 1e-9))
        recordings.append(rec.recording())

    threads = [threading.Thread(target=probe, name="I/O thread")]
    if neighbour:
        threads.append(threading.Thread(target=hog, name="CPU thread"))
    try:
        if switch_interval_s is not None:
            sys.setswitchinterval(switch_interval_s)
        for thread in reversed(threads):  # the neighbour first: it is computing when probes start
            thread.start()
        threads[0].join(timeout=_TIMEOUT_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            if thread.ident is not None:
                thread.join(timeout=_TIMEOUT_SECONDS)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(previous)
    if len(late) != samples:
        raise RuntimeError(f"the I/O thread took {len(late)} of {samples} samples in time")
    trace = Trace()
    for recording in recordings:
        trace.extend(recording)
    return ConvoyResult(neighbour, interval, [ns / 1e6 for ns in late], trace,
                        share[0] if share else None)


def plot_convoy(result: ConvoyResult, ax=None, *, first_ms: float = 60.0):
    """The first `first_ms` of a convoy run: the I/O thread's sleeps and late wake-ups."""
    if not isinstance(result, ConvoyResult):
        raise TypeError(f"result must be a ConvoyResult from convoy, got {type(result).__name__}")
    check_float("first_ms", first_ms, 1.0, 10_000.0)
    start = result.trace.start_ns
    end = start + round(first_ms * 1e6)
    shown = [e for e in result.trace.events if e.start_ns < end]
    clipped = Trace([e if e.end_ns <= end else type(e)(e.lane, e.label, e.kind, e.start_ns, end,
                                                       e.pid, e.cpu) for e in shown])
    return plot_timeline(clipped, ax, title=str(result).split(";")[0])


def _panel_demo(fig, progress, *, threads: int, increments: int, variant: str,
                switch_ms: float) -> str:
    """Panel demo: the chosen loop in threads, with the chosen switch interval."""
    if "sleep(0)" in variant and increments > _PANEL_SLEEP_INCREMENTS:
        raise ValueError(f"increments must be at most {_PANEL_SLEEP_INCREMENTS:,} with a sleep(0) "
                         f"loop (each step gives the GIL away: larger runs take minutes), got "
                         f"{increments:,}")
    progress(0.1, "counting…")
    previous = sys.getswitchinterval()
    try:
        sys.setswitchinterval(switch_ms / 1000)
        result = count_in_threads(VARIANTS[variant], threads, increments)
    finally:
        sys.setswitchinterval(previous)
    fig.set_size_inches(11, 1.6 + 0.45 * threads)
    plot_timeline(result.trace, fig.subplots(), title=str(result))
    return str(result)


def make_panel():
    """The chapter's panel: threads, increments, the loop (locked or not), the switch interval."""
    from helpers.widgets import Choice, Float, Int, Panel

    return Panel(
        "Threads adding to one counter",
        [Int("threads", 1, 8, 4),
         Choice("increments", [1_000, 5_000, 20_000, 100_000, 300_000], 1_000 if QUICK else 5_000,
                label="increments per thread"),
         Choice("variant", list(VARIANTS), "read, sleep(0), write", label="loop"),
         Float("switch_ms", 0.1, 20.0, 5.0, step=0.1, label="switch interval (ms)")],
        _panel_demo,
    )
