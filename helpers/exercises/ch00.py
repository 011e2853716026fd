"""Checks for chapter 00 (start here): CPU-bound or I/O-bound, which modes help, and code that
threads really run at once.

- 00.1 and 00.2 ask what the timelines showed;
- 00.3 runs the reader's ``compress_all(blocks, threads)`` (a module written with ``%%writefile``)
  with 1 and with 2 threads, next to a reference that compresses the same blocks in 2 threads,
  and says whether the output is right and whether the threads ran at once.

`load_function` is how every chapter's write-code exercise reads the reader's module::

    check("00.3", path) ──> load_function(path, "compress_all", 2) ──> run, time ──> Points
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import os
import time
from pathlib import Path
from typing import Any

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


# -- 00.3 ------------------------------------------------------------------------------------
# Four blocks of about 1 MB each: compressing one takes tens of ms, long against starting a
# thread, short enough that the check takes about a second on a slow machine.
_BLOCKS, _BLOCK_BYTES = 4, 1_000_000
# Two threads must make it at least this much faster than one; a reference run of the same work
# in two threads, measured side by side, shows whether this machine can do it at all right now.
SPEEDUP_NEEDED = 1.3
_ATTEMPTS = 3


def _blocks() -> list[bytes]:
    import random

    rng = random.Random(0)
    words = [bytes(rng.choice(b"abcdefghijklmnop") for _ in range(rng.randint(2, 9)))
             for _ in range(300)]
    return [b" ".join(rng.choice(words) for _ in range(_BLOCK_BYTES // 6))[:_BLOCK_BYTES]
            for _ in range(_BLOCKS)]


def _timed(fn, *args) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - started


def _reference(blocks: list[bytes], threads: int) -> list[bytes]:
    import zlib
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(zlib.compress, blocks, timeout=60))


@exercise("00.3", "Threads that compress at the same time")
def _compress(answer):
    import zlib

    from helpers.course import usable_cores

    compress_all, points = load_function(answer, "compress_all", 2)
    yield from points
    if compress_all is None:
        return
    blocks = _blocks()
    try:
        out, _ = _timed(compress_all, blocks, 2)
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
    best, reference = 0.0, 0.0
    for _ in range(_ATTEMPTS):
        _, one = _timed(compress_all, blocks, 1)
        _, two = _timed(compress_all, blocks, 2)
        _, ref_one = _timed(_reference, blocks, 1)
        _, ref_two = _timed(_reference, blocks, 2)
        best, reference = max(best, one / two), max(reference, ref_one / ref_two)
        if best >= SPEEDUP_NEEDED:
            break
    if best >= SPEEDUP_NEEDED:
        yield Point(True, f"2 threads were {best:.2f}× as fast as 1: they compressed at once")
    elif usable_cores() < 2 or reference < SPEEDUP_NEEDED or best >= 0.85 * reference:
        yield Point(True, f"2 threads were {best:.2f}× as fast as 1, about what this machine "
                          f"allows right now (the reference reached {reference:.2f}×; other "
                          "programs are using the cores): run the check again when it is quieter "
                          "to see the full speed-up")
    else:
        yield Point(False, f"2 threads were only {best:.2f}× as fast as 1 (the reference reached "
                           f"{reference:.2f}×): does your code hand the blocks to threads, and "
                           "does the work inside them release the GIL? (see the zlib cell)")
