"""Checks for chapter 00 (start here, and part b, threads): CPU-bound or I/O-bound, which modes
help, code that threads really run at once, and a thread race fixed with a lock.

- 00.1 and 00.2 ask what the timelines showed; 00.5 (``00b_threads``) asks for a prediction of
  the convoy's median lateness at a 2 ms switch interval and compares it with a run;
- 00.3 runs the reader's ``compress_all(blocks, threads)`` (a module written with ``%%writefile``)
  with 2 threads, recording every ``zlib.compress`` call it makes (thread, wall span, CPU time),
  and judges from that record: right output, two threads, calls in progress together, and more
  than one core's worth of CPU per second. Where the machine gave the threads one core only, it
  says "inconclusive", never ✓;
- 00.4 (``00b_threads``) runs the reader's ``visit(counts, pages)`` in 6 threads on one dict,
  recording every ``time.sleep`` it makes: no visit may be lost (also in a stress run with the
  sleeps skipped and threads switching every 10 µs), and two threads' fetches (the waits) must
  have overlapped — a lock held around the wait too loses nothing but serialises the threads.

`load_function` is how every chapter's write-code exercise reads the reader's module::

    check("00.3", path) ──> load_function(path, "compress_all", 2) ──> run, record ──> Points
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import os
import time
from pathlib import Path
from typing import Any

from helpers.course import usable_cores

from . import Point, exercise

__all__ = ["WORKLOADS", "load_function"]

_loaded = itertools.count()


def load_function(answer: Any, name: str, params: int):
    """``(function or None, points)``: `answer` must be the path of a module defining `name`
    with `params` parameters. The module is loaded afresh on every check, so an edited
    ``%%writefile`` cell is what gets checked."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a function name, got {name!r}")
    if isinstance(params, bool) or not isinstance(params, int) or not 0 <= params <= 20:
        raise ValueError(f"params must be an integer from 0 to 20, got {params!r}")
    if not isinstance(answer, (str, Path)) or not str(answer).endswith(".py"):
        return None, [Point(False, "answer should be the path of your module, like "
                                   "f\"{WORK}/module.py\" (the name after %%writefile)")]
    path = Path(answer)
    if not path.is_file():
        return None, [Point(False, f"there is no file {str(path)!r}: run the %%writefile cell")]
    spec = importlib.util.spec_from_file_location(
        f"cc_answer_{os.getpid()}_{next(_loaded)}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        return None, [Point(False, f"{path.name} does not import: {type(exc).__name__}: {exc}")]
    fn = getattr(module, name, None)
    if not callable(fn):
        return None, [Point(False, f"{path.name} defines no function {name}()")]
    try:
        count = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        count = params
    if count != params:
        return None, [Point(False, f"{name} should take {params} parameters, it takes {count}")]
    return fn, [Point(True, f"{path.name} defines {name}()")]

# What each task mostly does, and why: the hint a student gets for a wrong guess.
_WORKLOADS = {
    "resize 500 photos": ("cpu", "every pixel is computed: the core is busy the whole time"),
    "download 100 web pages": ("io", "most of the time is spent waiting for the network"),
    "compress a log file": ("cpu", "compression is arithmetic on every byte"),
    "query a database over the network": ("io", "the program waits for the server's answer"),
    "train a small model in pure Python": ("cpu", "it is loops of arithmetic"),
    "wait for the user to click": ("io", "nothing is computed while waiting"),
}
WORKLOADS = tuple(_WORKLOADS)


@exercise("00.1", "CPU-bound or I/O-bound?")
def _classify(answer):
    # One verdict for the whole answer: a ✓ or ✗ per workload would let one retry reveal all.
    if not isinstance(answer, dict):
        yield Point(False, "answer should be a dict mapping each workload to 'cpu' or 'io'")
        return
    missing = [task for task in _WORKLOADS if answer.get(task) is None]
    if missing:
        yield Point(False, f"one entry per workload, please: {', '.join(map(repr, missing))} "
                           f"{'is' if len(missing) == 1 else 'are'} missing")
        return
    right = sum(str(answer[task]).lower() == kind for task, (kind, _) in _WORKLOADS.items())
    if right < len(_WORKLOADS):
        yield Point(False, f"{right} of {len(_WORKLOADS)} are right. For each workload ask: "
                           "while it runs, is a core busy computing, or is the program waiting "
                           "for something outside it?")
        return
    for task, (kind, why) in _WORKLOADS.items():
        yield Point(True, f"{task!r} is {kind}-bound: {why}")


@exercise("00.2", "Which modes speed up which work?")
def _speedups(answer):
    if not isinstance(answer, dict) or set(answer) != {"cpu", "io"}:
        yield Point(False, "answer should be a dict with keys 'cpu' and 'io', each a set of modes")
        return
    expected = {
        "cpu": ({"processes"}, "only processes run Python code on two cores at once: "
                               "threads take turns holding the GIL"),
        "io": ({"threads", "processes"}, "waiting needs no core and releases the GIL, so "
                                         "threads and processes both wait at the same time"),
    }
    for kind, (modes, why) in expected.items():
        given = set(answer[kind]) if isinstance(answer[kind], (set, list, tuple)) else None
        if given is None:
            yield Point(False, f"answer[{kind!r}] should be a set such as {{'threads'}}")
        elif given == modes:
            yield Point(True, f"{kind}-bound work: {sorted(modes)} — {why}")
        elif "serial" in given:
            yield Point(False, f"{kind}-bound work: 'serial' is the baseline; it cannot beat "
                               "itself")
        elif given < modes:
            yield Point(False, f"{kind}-bound work: one more mode gets a speed-up; look at the "
                               "timelines again")
        else:
            yield Point(False, f"{kind}-bound work: {sorted(given - modes)} gives no speed-up "
                               "here; look at the orange 'wait' spans")


# -- 00.3 ------------------------------------------------------------------------------------
# Four blocks of about 1 MB each: compressing one takes tens of ms, long against starting a
# thread, short enough that the check takes about a second on a slow machine.
_BLOCKS, _BLOCK_BYTES = 4, 1_000_000
# "Ran at once" is read off the run itself: every zlib.compress call is recorded (thread, wall
# span, the thread's CPU time in it). Two threads ran at once when, over the run, the calls used
# at least this many cores' worth of CPU time per second of wall time: 1.0 is one core at a time.
CORES_NEEDED = 1.3
# Calls of two threads "overlap" when they are in progress together for at least this share of
# the shorter thread's busy time: calls handed over one after the other overlap by a sliver.
_OVERLAP_SHARE = 0.25
# An inconclusive run (overlapping calls, but the machine gave them one core) is retried this often.
_ATTEMPTS = 3


def _blocks() -> list[bytes]:
    import random

    rng = random.Random(0)
    words = [bytes(rng.choice(b"abcdefghijklmnop") for _ in range(rng.randint(2, 9)))
             for _ in range(300)]
    return [b" ".join(rng.choice(words) for _ in range(_BLOCK_BYTES // 6))[:_BLOCK_BYTES]
            for _ in range(_BLOCKS)]


def _recording_zlib(calls: list[tuple[int, int, int, int]]):
    """A stand-in for the zlib module whose ``compress`` records each call in `calls` as
    ``(thread number, wall start ns, wall end ns, the thread's CPU ns in the call)``."""
    import threading
    import types
    import zlib

    # A number per thread, never reused: a finished thread's ident may be given to the next one.
    numbers, mine = itertools.count(), threading.local()

    def compress(data, /, *args, **kwargs):
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        try:
            return zlib.compress(data, *args, **kwargs)
        finally:
            if not hasattr(mine, "number"):
                mine.number = next(numbers)
            calls.append((mine.number, wall, time.perf_counter_ns(), time.thread_time_ns() - cpu))

    stand_in = types.ModuleType("zlib")
    stand_in.__dict__.update({k: v for k, v in vars(zlib).items() if not k.startswith("__")})
    stand_in.compress = compress
    return stand_in, compress


def _spy_on_compress(fn) -> list[tuple[int, int, int, int]]:
    """Make the reader's module call a recording zlib.compress (``import zlib`` or ``from zlib
    import compress``, looked up at call time); return the list its calls go to."""
    import zlib

    calls: list[tuple[int, int, int, int]] = []
    stand_in, compress = _recording_zlib(calls)
    module = fn.__globals__
    for name, value in list(module.items()):
        if value is zlib:
            module[name] = stand_in
        elif value is zlib.compress:
            module[name] = compress
    return calls


def _overlap_ns(spans_a: list[tuple[int, int]], spans_b: list[tuple[int, int]]) -> int:
    return sum(max(0, min(a1, b1) - max(a0, b0)) for a0, a1 in spans_a for b0, b1 in spans_b)


def _evidence(calls: list[tuple[int, int, int, int]]) -> tuple[int, float, float]:
    """``(threads, overlap share, cores used)`` of one run's recorded compress calls."""
    by_thread: dict[int, list[tuple[int, int]]] = {}
    for thread, start, end, _ in calls:
        by_thread.setdefault(thread, []).append((start, end))
    spans = list(by_thread.values())
    busiest = sorted(spans, key=lambda s: -sum(b - a for a, b in s))[:2]
    share = 0.0
    if len(busiest) == 2:
        shorter = min(sum(b - a for a, b in s) for s in busiest)
        share = _overlap_ns(*busiest) / max(shorter, 1)
    wall = max(c[2] for c in calls) - min(c[1] for c in calls)
    return len(by_thread), share, sum(c[3] for c in calls) / max(wall, 1)


@exercise("00.3", "Threads that compress at the same time")
def _compress(answer):
    import zlib

    compress_all, points = load_function(answer, "compress_all", 2)
    yield from points
    if compress_all is None:
        return
    calls = _spy_on_compress(compress_all)
    blocks = _blocks()
    try:
        out = compress_all(blocks, 2)
        restored = [zlib.decompress(b) for b in out]
    except Exception as exc:
        yield Point(False, f"compress_all(blocks, 2) raised or returned something zlib cannot "
                           f"decompress: {type(exc).__name__}: {exc}")
        return
    right = restored == blocks
    yield Point(right, "each block comes back, compressed, in its place" if right else
                "decompressing the result does not give the blocks back, in order")
    if not right:
        return
    if not calls:
        yield Point(False, "no call of zlib.compress was seen: compress each block with "
                           "zlib.compress (the check watches those calls)")
        return
    for attempt in range(_ATTEMPTS if usable_cores() > 1 else 1):  # one core: no retry helps
        if attempt:
            calls.clear()
            compress_all(blocks, 2)
        threads, share, cores = _evidence(calls)
        if threads != 2 or share < _OVERLAP_SHARE or cores >= CORES_NEEDED:
            break
    if threads == 1:
        yield Point(False, "every zlib.compress call ran in one thread: hand the blocks to "
                           "`threads` threads (a thread pool's map keeps their order)")
    elif threads > 2:
        yield Point(False, f"compress_all(blocks, 2) compressed in {threads} threads: use "
                           "`threads` of them, no more")
    elif share < _OVERLAP_SHARE:
        yield Point(False, "the two threads compressed one after the other, never at the same "
                           "time: start them all before waiting for any, and hold no lock "
                           "around the compressing")
    elif cores >= CORES_NEEDED:
        yield Point(True, f"two threads compressed at the same time, on {cores:.1f} cores' "
                          "worth of CPU: zlib releases the GIL while it compresses")
    elif usable_cores() < 2:
        yield Point.unsure(f"your two threads compressed at the same time, on {cores:.1f} cores' "
                           "worth of CPU: this machine gives the course one core (its affinity "
                           "mask allows only one), so it cannot show two threads on two cores "
                           "at once. On a machine with two free cores this check can tell")
    else:
        yield Point.unsure(f"your two threads compressed at the same time, but the machine "
                           f"gave them only {cores:.1f} cores' worth of CPU (other programs are "
                           "using the cores), so it cannot show that they ran on two cores at "
                           "once. Run the check again when it is quieter")


# -- 00.4 ------------------------------------------------------------------------------------
# The check's run: this many threads, each visiting the pages below. Every visit "fetches" the
# page (the reader's time.sleep), so threads that may wait at the same time finish in about a
# thread's share of the waits; two pages, so the threads collide on the same key all the time.
_VISIT_THREADS = 6
_VISIT_PAGES = ("home", "news") * 15
# A wait this long (seconds) is a fetch, not the sleep(0) between a read and a write.
_FETCH_AT_LEAST = 0.0005
# The check runs this many times: a lost update in any run is one too many.
_VISIT_RUNS = 3
# Then a stress run: sleeps skipped, threads made to switch as often as the interpreter lets
# them (every ~10 µs), many visits each. A read-add-write with no gap between the read and the
# write that is not locked loses here too, though it rarely does at the default 5 ms.
_STRESS_VISITS, _STRESS_SWITCH_S = 10_000, 1e-5


def _recording_sleep(spans: list[tuple[int, int, int]], skip: dict[str, bool]):
    """A stand-in for the time module whose ``sleep`` records ``(thread, start ns, end ns)`` of
    every wait of at least `_FETCH_AT_LEAST` seconds (and skips every sleep while
    ``skip["fetch"]``: the stress run is about the read and the write, not the waits)."""
    import threading
    import types

    numbers, mine = itertools.count(), threading.local()

    def sleep(seconds, /):
        if skip["fetch"]:
            return None
        started = time.perf_counter_ns()
        try:
            return time.sleep(seconds)
        finally:
            if seconds >= _FETCH_AT_LEAST:
                if not hasattr(mine, "number"):
                    mine.number = next(numbers)
                spans.append((mine.number, started, time.perf_counter_ns()))

    stand_in = types.ModuleType("time")
    stand_in.__dict__.update({k: v for k, v in vars(time).items() if not k.startswith("__")})
    stand_in.sleep = sleep
    return stand_in, sleep


def _spy_on_sleep(fn) -> tuple[list[tuple[int, int, int]], dict[str, bool]]:
    """Make the reader's module call a recording time.sleep; return the list of its waits and
    the switch that skips the fetches."""
    spans: list[tuple[int, int, int]] = []
    skip = {"fetch": False}
    stand_in, sleep = _recording_sleep(spans, skip)
    module = fn.__globals__
    for name, value in list(module.items()):
        if value is time:
            module[name] = stand_in
        elif value is time.sleep:
            module[name] = sleep
    return spans, skip


def _visit_in_threads(visit, pages: list[str]) -> tuple[int, int, Exception | None]:
    """``(expected, counted, error)`` of one run of `visit` in `_VISIT_THREADS` threads."""
    import threading

    counts: dict[str, int] = {}
    errors: list[Exception] = []
    together = threading.Barrier(_VISIT_THREADS)  # all start at once: a short run still races

    def body():
        try:
            together.wait(timeout=10)
            visit(counts, list(pages))
        except Exception as exc:  # the reader's error is feedback
            errors.append(exc)

    threads = [threading.Thread(target=body, daemon=True) for _ in range(_VISIT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    if any(thread.is_alive() for thread in threads):
        return 0, 0, TimeoutError("a thread was still visiting after 30 s (a lock never released?)")
    counted = sum(v for v in counts.values() if isinstance(v, int))
    return _VISIT_THREADS * len(pages), counted, errors[0] if errors else None


def _unlocked_visit(counts: dict, pages: list[str]) -> None:
    """The check's baseline: the race with no lock (read, give up the GIL, write). Where even this
    loses nothing, the run could not have caught a wrong answer either."""
    import time

    for page in pages:
        seen = counts.get(page, 0)
        time.sleep(0)
        counts[page] = seen + 1


def _waits_overlapped(spans: list[tuple[int, int, int]]) -> bool:
    by_thread: dict[int, list[tuple[int, int]]] = {}
    for thread, start, end in spans:
        by_thread.setdefault(thread, []).append((start, end))
    lanes = list(by_thread.values())
    return any(_overlap_ns(a, b) > 0 for i, a in enumerate(lanes) for b in lanes[i + 1:])


@exercise("00.4", "Fix a thread race with a Lock")
def _visits(answer):
    visit, points = load_function(answer, "visit", 2)
    yield from points
    if visit is None:
        return
    import sys

    spans, skip = _spy_on_sleep(visit)
    worst = 0
    for _ in range(_VISIT_RUNS):
        expected, counted, error = _visit_in_threads(visit, list(_VISIT_PAGES))
        if error is not None:
            yield Point(False, f"visit(counts, pages) raised {type(error).__name__}: {error}")
            return
        worst = max(worst, expected - counted)
    fetched = list(spans)
    previous = sys.getswitchinterval()
    stress = list(_VISIT_PAGES[:2]) * (_STRESS_VISITS // 2)
    try:
        skip["fetch"] = True
        sys.setswitchinterval(_STRESS_SWITCH_S)
        for _ in range(_VISIT_RUNS):
            if worst:
                break
            expected, counted, error = _visit_in_threads(visit, stress)
            worst = max(worst, expected - counted) if error is None else worst
        # Nothing lost: right, or a machine that cannot show the race right now (threads that
        # never get a core at the same moment)? The same stress with no lock at all tells.
        base_expected, base_counted, _ = ((0, 0, None) if worst
                                          else _visit_in_threads(_unlocked_visit, stress))
    finally:
        skip["fetch"] = False
        sys.setswitchinterval(previous)
    spans = fetched
    if worst:
        yield Point(False, f"{worst:,} of {expected:,} visits were lost: two threads read the "
                           "same count, and the second write overwrote the first. What must one "
                           "thread finish before another may read?")
    elif base_counted == base_expected:
        yield Point.unsure("no visit was lost, but neither was one by the same threads with no "
                           "lock at all: the machine did not let threads race just now (busy, or "
                           "one core). Run the check again")
    else:
        yield Point(True, f"{_VISIT_THREADS} threads, {_VISIT_RUNS} runs, and again with threads "
                          "switching every 10 µs: every visit counted, none lost (without a lock, "
                          f"{base_expected - base_counted:,} were lost in the same run)")
    if not spans:
        yield Point(False, "no fetch was seen: keep the time.sleep(FETCH_SECONDS) that stands "
                           "for downloading the page (the check watches it)")
    elif not _waits_overlapped(spans):
        yield Point(False, "no two threads ever fetched at the same time: the lock is held "
                           "while a thread waits, so the others queue behind it. Hold it only "
                           "where the shared dict is read and written")
    else:
        yield Point(True, "threads fetched at the same time: the lock covers only the count")


# -- 00.5 ------------------------------------------------------------------------------------
# The switch interval the reader predicts for, and how the prediction is judged: against the
# median lateness measured right then, within this share of it (or this many ms, whichever is
# larger): timer slack and the probe's own run add a little to the interval.
_PREDICT_SWITCH_S = 0.002
_PREDICT_SHARE, _PREDICT_SLACK_MS = 0.3, 0.4
_PREDICT_SAMPLES = 60  # about 0.2 s of 1 ms sleeps beside the neighbour
# The GIL explains a wait of one switch interval (the holder drops it within microseconds of
# being asked). A median beyond this many intervals is the I/O thread waiting for a core the OS
# gave to other programs: the run cannot judge a prediction of the GIL's part.
_GIL_EXPLAINS = 2.0


@exercise("00.5", "Predict how late the I/O thread wakes")
def _predict_convoy(answer):
    import math

    from helpers.chapters.ch00b_threads import convoy

    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or \
            not math.isfinite(answer) or answer < 0:
        yield Point(False, "answer should be a number of milliseconds, like 0.3 or 12")
        return
    for _ in range(_ATTEMPTS if usable_cores() > 1 else 1):  # a disturbed run is tried again
        run = convoy(_PREDICT_SAMPLES, 0.001, neighbour=True, switch_interval_s=_PREDICT_SWITCH_S)
        alone = convoy(_PREDICT_SAMPLES, 0.001, neighbour=False)
        # Starved of a core, the neighbour leaves the GIL free: a short wait then says nothing.
        starved = run.starved and run.p50_ms < 0.5 * _PREDICT_SWITCH_S * 1000
        overrun = run.p50_ms > _GIL_EXPLAINS * _PREDICT_SWITCH_S * 1000
        if not starved and not overrun and alone.p50_ms <= 0.5 * _PREDICT_SWITCH_S * 1000:
            break
    measured = run.p50_ms
    if usable_cores() < 2:  # the neighbour's time slices on the one core add to the GIL's wait
        yield Point.unsure(f"the I/O thread woke {measured:.2f} ms late (median), but this "
                           "machine gives the course one core (its affinity mask allows only "
                           "one): the I/O thread also waits for the CPU thread's turns on that "
                           "core, so the figure is not the GIL's alone and cannot judge your "
                           "prediction. On a machine with two free cores this check can")
        return
    if starved or alone.p50_ms > 0.5 * _PREDICT_SWITCH_S * 1000:
        yield Point.unsure(f"the CPU thread ran {run.neighbour_cpu_share:.0%} of the time and "
                           f"the I/O thread alone woke {alone.p50_ms:.2f} ms late: other programs "
                           "are taking the cores, so this run cannot judge your prediction. Run "
                           "the check again when it is quieter")
        return
    if overrun:
        yield Point.unsure(f"the I/O thread woke {measured:.2f} ms late (median), far more than "
                           "the GIL alone makes it wait: it also waited for a core that other "
                           "programs were using, so this run cannot judge your prediction. Run "
                           "the check again when it is quieter")
        return
    close = abs(answer - measured) <= max(_PREDICT_SHARE * measured, _PREDICT_SLACK_MS)
    if close:
        yield Point(True, f"you predicted {answer:g} ms; the I/O thread woke {measured:.2f} ms "
                          "late (median): about one switch interval, the time a thread waits "
                          "before it asks the running one to drop the GIL")
    elif answer < measured:
        yield Point(False, f"you predicted {answer:g} ms; it woke {measured:.2f} ms late "
                           "(median). Its sleep ends on time — what must it have before it "
                           "can run Python again, and how long does it wait before asking?")
    else:
        yield Point(False, f"you predicted {answer:g} ms; it woke only {measured:.2f} ms late "
                           "(median). How long does a waiting thread let the holder run before "
                           "it asks for the GIL, with the interval this run sets?")
