"""The matrix's six workloads: what each task does, and the form each model runs it in.

Every task function is top level (it pickles under every start method) and records its own spans
(``run`` while it computes, ``io`` while it waits), so each timeline shows *what kind* of time a
task spent, whichever model ran it::

    Workload("waits", blocking=wait, gevent=gevent_wait, asyncio=async_wait, tasks=…)
        │
        ├─ serial, threads, processes, pool, Dask ──> wait(seconds):       time.sleep
        ├─ gevent, gevent in processes ────────────> gevent_wait(seconds): gevent.sleep
        └─ asyncio ────────────────────────────────> async_wait(seconds):  await asyncio.sleep

A wait in gevent or asyncio form is what a real program gets from a cooperative library (a
monkey-patched socket, an ``aiohttp`` request). A workload without a cooperative form gives
gevent the blocking function itself (it holds the hub, as unpatched C code or a CPU loop would)
and asyncio a plain function, which `run_asyncio` sends to ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from helpers.course import check_float, check_int
from helpers.timeline import Recorder, TracedResult
from helpers.workloads import cpu_task, iterations_for

__all__ = [
    "MAX_PAYLOAD_MB",
    "MAX_TASK_SECONDS",
    "WORKLOADS",
    "Workload",
    "c_hash",
    "checksum",
    "gevent_mixed",
    "gevent_wait",
    "hash_rounds_for",
    "mixed",
    "python_cpu",
    "wait",
]

# The buffer one `c_hash` round hashes: large enough that hashlib releases the GIL (it does from
# 2 KiB) and that one round is a fraction of a millisecond, small enough to cost nothing to make.
_HASH_BUFFER_BYTES = 1 << 20
# How long the hash calibration runs: enough rounds to time well, short enough not to notice.
_HASH_CALIBRATION_SECONDS = 0.03
# One task: at most ten seconds of work or waiting; more is a typo (each demo cell has 10 s).
MAX_TASK_SECONDS = 10.0
# The largest payload a task may carry: beyond it a matrix run mostly measures the memory bus.
MAX_PAYLOAD_MB = 64
_cache: dict[str, Any] = {}


def _buffer() -> bytes:
    if "buffer" not in _cache:  # made once per process, on first use
        _cache["buffer"] = bytes(range(256)) * (_HASH_BUFFER_BYTES // 256)
    return _cache["buffer"]


def _traced(recorder: Recorder, value: Any) -> TracedResult:
    return TracedResult(value, recorder.recording())


def python_cpu(iterations: int) -> TracedResult:
    """CPU-bound pure Python (`helpers.workloads.cpu_task`): holds the GIL throughout."""
    recorder = Recorder("task")
    with recorder.span("compute"):
        value = cpu_task(iterations)
    return _traced(recorder, value)


def c_hash(rounds: int) -> TracedResult:
    """CPU-bound in C: SHA-256 over a 1 MiB buffer, `rounds` times. hashlib releases the GIL
    while it hashes a buffer this large, so threads of one process really run in parallel."""
    check_int("rounds", rounds, 1, 1_000_000)
    data, digest = _buffer(), hashlib.sha256()
    recorder = Recorder("task")
    with recorder.span("hash"):
        for _ in range(rounds):
            digest.update(data)
    return _traced(recorder, digest.hexdigest()[:16])


def hash_rounds_for(seconds: float) -> int:
    """How many `c_hash` rounds take about `seconds` on this machine (measured once)."""
    check_float("seconds", seconds, 0.0, MAX_TASK_SECONDS)
    if "hash_rate" not in _cache:
        data, rounds, started = _buffer(), 0, time.perf_counter()
        digest = hashlib.sha256()
        while time.perf_counter() - started < _HASH_CALIBRATION_SECONDS:
            digest.update(data)
            rounds += 1
        _cache["hash_rate"] = rounds / (time.perf_counter() - started)
    return max(1, round(_cache["hash_rate"] * seconds))


def wait(seconds: float) -> TracedResult:
    """An I/O wait as blocking code does it (``time.sleep``): the thread waits, the core is free."""
    check_float("seconds", seconds, 0.0, MAX_TASK_SECONDS)
    recorder = Recorder("task")
    with recorder.span("wait", "io"):
        time.sleep(seconds)
    return _traced(recorder, seconds)


def gevent_wait(seconds: float) -> TracedResult:
    """The same wait through gevent (what a patched ``time.sleep`` or socket becomes)."""
    import gevent

    check_float("seconds", seconds, 0.0, MAX_TASK_SECONDS)
    recorder = Recorder("task")
    with recorder.span("wait", "io"):
        gevent.sleep(seconds)
    return _traced(recorder, seconds)


async def async_wait(seconds: float) -> TracedResult:
    """The same wait as a coroutine: ``await asyncio.sleep`` lets the loop run other tasks."""
    import asyncio  # here: a worker process that never runs a coroutine need not import it

    check_float("seconds", seconds, 0.0, MAX_TASK_SECONDS)
    recorder = Recorder("task")
    with recorder.span("wait", "io"):
        await asyncio.sleep(seconds)
    return _traced(recorder, seconds)


def checksum(payload: bytes) -> TracedResult:
    """A large payload, little work: CRC-32 of the bytes the task was given (zlib, in C)."""
    recorder = Recorder("task")
    with recorder.span("crc32"):
        value = zlib.crc32(payload)
    return _traced(recorder, value)


def mixed(iterations: int, seconds: float) -> TracedResult:
    """Compute, then wait: a request handler that parses its input and then calls a database."""
    check_float("seconds", seconds, 0.0, MAX_TASK_SECONDS)
    recorder = Recorder("task")
    with recorder.span("compute"):
        value = cpu_task(iterations)
    with recorder.span("wait", "io"):
        time.sleep(seconds)
    return _traced(recorder, value)


def gevent_mixed(iterations: int, seconds: float) -> TracedResult:
    """`mixed` with its wait through gevent."""
    import gevent

    check_float("seconds", seconds, 0.0, MAX_TASK_SECONDS)
    recorder = Recorder("task")
    with recorder.span("compute"):
        value = cpu_task(iterations)
    with recorder.span("wait", "io"):
        gevent.sleep(seconds)
    return _traced(recorder, value)


async def async_mixed(iterations: int, seconds: float) -> TracedResult:
    """`mixed` as a coroutine: the computation holds the loop, the wait does not."""
    import asyncio

    check_float("seconds", seconds, 0.0, MAX_TASK_SECONDS)
    recorder = Recorder("task")
    with recorder.span("compute"):
        value = cpu_task(iterations)
    with recorder.span("wait", "io"):
        await asyncio.sleep(seconds)
    return _traced(recorder, value)


@dataclass(frozen=True)
class Workload:
    """One row of the matrix: the task in each form, and how to make `count` tasks of a size.

    ``make(size, count)`` returns the argument tuples; `size` is the work (or the wait) of one
    task in `unit`: milliseconds on this machine, or for a payload the megabytes each task is
    given. `chapter` is where the course shows this case.
    """

    name: str
    question: str
    blocking: Callable[..., Any]
    make: Callable[[float, int], list[tuple]]
    gevent: Callable[..., Any] | None = None
    asyncio: Callable[..., Any] | None = None
    default_ms: float = 50.0
    default_tasks: int = 4
    chapter: str = ""
    unit: str = "ms"

    def fn_for(self, model: str) -> Callable[..., Any]:
        """The form of the task that `model` runs."""
        if model in ("gevent", "gevent-in-processes") and self.gevent is not None:
            return self.gevent
        if model == "asyncio" and self.asyncio is not None:
            return self.asyncio
        return self.blocking


def _cpu_tasks(task_ms: float, count: int) -> list[tuple]:
    return [(iterations_for(task_ms / 1e3),)] * count


def _hash_tasks(task_ms: float, count: int) -> list[tuple]:
    return [(hash_rounds_for(task_ms / 1e3),)] * count


def _wait_tasks(task_ms: float, count: int) -> list[tuple]:
    return [(task_ms / 1e3,)] * count


def _payload_tasks(task_ms: float, count: int) -> list[tuple]:
    # The size is in megabytes here: what travels matters, the work is negligible.
    megabytes = check_float("payload megabytes", task_ms, 0.01, MAX_PAYLOAD_MB)
    block = bytes(range(256)) * round(megabytes * (1 << 20) / 256)
    return [(block,)] * count


def _mixed_tasks(task_ms: float, count: int) -> list[tuple]:
    half = task_ms / 2e3
    return [(iterations_for(half), half)] * count


# Default sizes: each row's serial run takes about 0.2-0.5 s, so the whole matrix (six rows of
# seven models, every pool and process started fresh) fits in one cell of about ten seconds.
WORKLOADS = {
    "CPU, pure Python": Workload(
        "CPU, pure Python", "computing in Python code (loops, parsing, dicts)",
        python_cpu, _cpu_tasks, default_ms=60.0, default_tasks=4, chapter="01a_processes"),
    "CPU in C, GIL released": Workload(
        "CPU in C, GIL released", "computing inside a library that releases the GIL "
        "(hashlib, zlib, NumPy)", c_hash, _hash_tasks, default_ms=60.0, default_tasks=4,
        chapter="00_start_here"),
    "I/O waits": Workload(
        "I/O waits", "waiting on the network or a disk, many waits at once",
        wait, _wait_tasks, gevent_wait, async_wait, default_ms=20.0, default_tasks=40,
        chapter="05a_coroutines"),
    "many tiny tasks": Workload(
        "many tiny tasks", "thousands of tasks of well under a millisecond each",
        python_cpu, _cpu_tasks, default_ms=0.05, default_tasks=400, chapter="04a_pools"),
    "large payload": Workload(
        "large payload", "megabytes of input per task, little work on each",
        checksum, _payload_tasks, default_ms=4.0, default_tasks=8, chapter="02a_ipc", unit="MB"),
    "mixed": Workload(
        "mixed", "compute, then wait (a request handler)",
        mixed, _mixed_tasks, gevent_mixed, async_mixed, default_ms=40.0, default_tasks=8,
        chapter="07b_under_load"),
}
