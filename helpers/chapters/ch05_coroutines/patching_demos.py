"""What monkey patching changes, shown in child processes (never in the kernel).

Each function here is meant to run through `helpers.runners.run_patched`, once patched and once
not, so the notebook can put the two answers side by side::

    >>> from helpers.runners import run_patched
    >>> patched = run_patched(patch_report).value             # doctest: +SKIP
    >>> plain = run_patched(patch_report, patch=False).value  # doctest: +SKIP
    >>> patched["time.sleep"], plain["time.sleep"]             # doctest: +SKIP
    (True, False)

- `patch_report`: which standard-library objects ``patch_all()`` replaced, checked with
  ``gevent.monkey.is_object_patched`` (so the answer is gevent's own, not a guess);
- `sleep_in_greenlets`, `blocking_sleepers`: greenlets that call plain ``time.sleep``: one after
  another unpatched, all at once patched — the program did not change, only the module under it;
- `late_patch`: a reference taken before patching (``from time import sleep``) keeps blocking;
- `pool_sleepers`: the widget panel's demo, a ``gevent.pool.Pool`` of sleeping tasks.
"""

from __future__ import annotations

import random
import time
import warnings
from typing import Any

from helpers.course import check_callable, check_choice, check_float, check_int
from helpers.timeline import Recorder, TracedResult

__all__ = [
    "DISTRIBUTIONS",
    "PATCH_TARGETS",
    "blocking_sleepers",
    "late_patch",
    "patch_report",
    "pool_sleepers",
    "sleep_in_greenlets",
    "sleep_times",
]

# What the chapter asks about: (module, name), name None meaning "is the module as a whole patched".
# Most are things that wait on the OS; the last four are controls patch_all() leaves alone.
PATCH_TARGETS = (
    ("time", "sleep"),
    ("socket", "socket"),
    ("socket", "getaddrinfo"),
    ("select", "select"),
    ("threading", None),
    ("threading", "Lock"),
    ("threading", "get_ident"),
    ("queue", "SimpleQueue"),
    ("subprocess", "Popen"),
    ("ssl", "SSLContext"),
    ("os", "fork"),
    ("signal", "signal"),
    ("time", "time"),  # control: reading the clock never waits
    ("os", "read"),  # control: file reads still block (gevent.os.nb_read is the opt-in)
    ("os", "getpid"),  # control
    ("math", "sqrt"),  # control
)
DISTRIBUTIONS = ("fixed", "uniform", "exponential")
# An unpatched panel run stops starting new tasks after this long: serial sleeps would otherwise
# keep a reader waiting for count × mean seconds (the cells' bar is 10 s, start-up included).
_SERIAL_BUDGET_SECONDS = 4.0
# Every join in a child waits at most this long; the parent's own timeout is the outer bound.
_JOIN_TIMEOUT_SECONDS = 120.0


def patch_report() -> dict[str, bool]:
    """``{"time.sleep": True, …}``: which objects gevent's monkey patching replaced here."""
    from gevent import monkey

    report = {}
    for module, name in PATCH_TARGETS:
        if name is None:
            report[f"{module} (module)"] = monkey.is_module_patched(module)
        else:
            report[f"{module}.{name}"] = monkey.is_object_patched(module, name)
    return report


def sleep_in_greenlets(sleep: Any, durations: list[float]) -> float:
    """One greenlet per duration, each calling ``sleep(d)``; the seconds until all are done."""
    import gevent

    check_callable("sleep", sleep)
    durations = _checked_durations(durations)
    started = time.perf_counter()
    greenlets = [gevent.spawn(sleep, seconds) for seconds in durations]
    for greenlet, seconds in zip(greenlets, durations):
        greenlet.name = f"sleep({seconds:g})"  # its lane on the timeline
    if len(gevent.joinall(greenlets, timeout=_JOIN_TIMEOUT_SECONDS)) < len(greenlets):
        gevent.killall(greenlets, timeout=1.0)  # every wait bounded; nothing left running
        raise TimeoutError(f"greenlets still sleeping after {_JOIN_TIMEOUT_SECONDS:g} s: killed")
    return time.perf_counter() - started


def _checked_durations(durations: Any) -> list[float]:
    if isinstance(durations, (str, bytes)) or not isinstance(durations, (list, tuple)) or \
            not 1 <= len(durations) <= 1000:
        raise ValueError(f"durations must be a list of 1 to 1000 seconds, got {durations!r:.80}")
    for seconds in durations:
        check_float("each of durations", seconds, 0.0, 10.0)
    if sum(durations) > 60.0:
        raise ValueError(f"durations must add up to at most 60 s, got {sum(durations):g}")
    return list(durations)


def blocking_sleepers(durations: list[float]) -> float:
    """Greenlets each calling plain ``time.sleep(d)``, as a library would; the total time."""
    return sleep_in_greenlets(time.sleep, durations)


def late_patch(seconds: float = 0.1, count: int = 3) -> dict[str, Any]:
    """Patch *after* taking a reference to ``time.sleep``; run in an unpatched child."""
    check_float("seconds", seconds, 0.0, 2.0)
    check_int("count", count, 1, 20)
    from gevent import monkey

    early_sleep = time.sleep  # what `from time import sleep` at the top of a module would keep
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gevent may warn about late patching: that is the point
        monkey.patch_all()
    return {
        "time.sleep is patched now": monkey.is_object_patched("time", "sleep"),
        "the early reference is gevent's sleep": early_sleep is time.sleep,
        f"{count} greenlets × early reference (s)": round(
            sleep_in_greenlets(early_sleep, [seconds] * count), 3),
        f"{count} greenlets × time.sleep (s)": round(
            sleep_in_greenlets(time.sleep, [seconds] * count), 3),
    }


def sleep_times(count: int, distribution: str, mean: float, seed: int = 5) -> list[float]:
    """`count` sleep durations with the given mean (seeded: the same run draws the same picture)."""
    check_int("count", count, 1, 100_000)
    check_choice("distribution", distribution, DISTRIBUTIONS)
    check_float("mean", mean, 0.0, 10.0)
    check_int("seed", seed, 0, 2**63)
    rng = random.Random(seed)
    if distribution == "fixed":
        return [mean] * count
    if distribution == "uniform":
        return [rng.uniform(0, 2 * mean) for _ in range(count)]
    return [min(rng.expovariate(1 / mean), 10 * mean) if mean else 0.0 for _ in range(count)]


def _task(recorder: Recorder, lane: str, seconds: float, deadline: float) -> bool:
    if time.perf_counter() > deadline:
        # Past the time budget: with a large pool every task is spawned at once, and unpatched
        # they would then sleep one after another for the sum of their sleeps.
        return False
    start = time.perf_counter_ns()
    time.sleep(seconds)  # plain time.sleep: cooperative only when the child is patched
    recorder.add_lane(lane, "sleep", "io", start, time.perf_counter_ns())
    return True


def pool_sleepers(count: int, distribution: str, mean: float, pool_size: int) -> TracedResult:
    """The panel's demo: `count` tasks sleeping with plain ``time.sleep`` through a ``Pool``.

    Returns a `TracedResult` whose value says how many ran, how many were skipped (no task starts
    after a few seconds, so an unpatched run, whose sleeps add up, stays short whatever the pool
    size) and how long it took; the recording has one ``io`` span per sleep, in the lane of the
    greenlet that slept.
    """
    check_int("count", count, 1, 1000)
    check_int("pool_size", pool_size, 1, 10_000)
    check_float("mean", mean, 0.0, 1.0)
    durations = sleep_times(count, distribution, mean)
    import gevent
    from gevent.pool import Pool

    recorder = _LaneRecorder()
    pool = Pool(pool_size)
    started = time.perf_counter()
    deadline = started + _SERIAL_BUDGET_SECONDS
    glets = []
    for index, seconds in enumerate(durations):
        if time.perf_counter() > deadline:  # a small pool: spawn waits for a free slot
            break
        glet = pool.spawn(_task, recorder, f"task {index}", seconds, deadline)
        glet.name = f"task {index}"
        glets.append(glet)
    if not pool.join(timeout=_JOIN_TIMEOUT_SECONDS):
        pool.kill(timeout=1.0)
    gevent.sleep(0)
    elapsed = time.perf_counter() - started
    ran = [seconds for seconds, glet in zip(durations, glets) if glet.value]
    value = {"ran": len(ran), "skipped": count - len(ran), "seconds": elapsed,
             "sum of sleeps": sum(ran), "longest sleep": max(ran, default=0.0)}
    return TracedResult(value, recorder.recording())


class _LaneRecorder(Recorder):
    """A `Recorder` whose spans each name their own lane (one per greenlet)."""

    def __init__(self) -> None:
        super().__init__("tasks", cpus=False)
        self._lanes: list[str] = []

    def add_lane(self, lane: str, label: str, kind: str, start_ns: int, end_ns: int) -> None:
        self._lanes.append(lane)
        self.add(label, kind, start_ns, end_ns)

    def recording(self):
        from dataclasses import replace

        recording = super().recording()
        recording.events = [replace(e, lane=lane) for e, lane in zip(recording.events, self._lanes)]
        return recording
