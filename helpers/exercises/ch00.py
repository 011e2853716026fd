"""Checks for chapter 00 (start here): telling CPU-bound from I/O-bound work."""

from __future__ import annotations

from . import Point, exercise

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
    if not isinstance(answer, dict):
        yield Point(False, "answer should be a dict mapping each workload to 'cpu' or 'io'")
        return
    for task, (kind, why) in _WORKLOADS.items():
        given = answer.get(task)
        if given is None:
            yield Point(False, f"{task!r} is missing")
        elif str(given).lower() == kind:
            yield Point(True, f"{task!r} is {kind}-bound: {why}")
        else:
            yield Point(False, f"{task!r}: not {given!r} — think about whether the core is busy")


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
