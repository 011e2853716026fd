"""Sharing without copying — Value/Array, shared_memory, ShareableList — and sharing by asking,
through a Manager. What each costs per access and per MiB, measured side by side::

    Value('i') / Array('d', n)   ctypes objects in a shared mmap; each .value / [i] access takes
                                 the object's lock (get_lock()) unless made with lock=False
    SharedMemory(create=True)    a named block in /dev/shm; np.ndarray(buffer=shm.buf) is an array
      └─ another process         SharedMemory(name) maps the same pages: no copy at all
      └─ who unlinks             the creator, once, after everyone closed (else the block outlives
                                 the program, and the resource tracker warns when it cleans up)
    ShareableList([...])         a fixed-length list of int/float/bool/str/bytes/None in a block
    Manager()                    a server process; d = m.dict() is a proxy: every d[k] = v is a
                                 message to the server and a reply (a round trip)
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from helpers.course import check_float, check_int, check_start_method, check_timeout, mp_context
from helpers.runners.cleanup import ignore_sigint, release_semaphores, unlink_shared_memory

from .common import Table, format_bytes, started

__all__ = ["access_costs", "check_shape", "leak_warning", "per_mib_costs", "share_array_demo",
           "shared_memory_room"]

_BATCHES = 5  # access costs: the best of this many batches
# Where Linux keeps SharedMemory blocks: a tmpfs in RAM. A block larger than its free space is
# still created (the file is sparse), and the first write to a page that finds no room kills the
# writer with SIGBUS (a notebook's kernel dies) and leaves the block behind. So a demo's block
# must fit, with room to spare for everyone else who needs the space (other kernels' blocks and
# semaphores): at most the free space less a tenth of it, and less 64 MiB at the very least.
_SHM_FOLDER = "/dev/shm"
_SHM_SPARE_FRACTION = 0.1
_SHM_SPARE_BYTES = 64 << 20
# An array of more dimensions than this is a typo here, not a lesson.
_MAX_DIMENSIONS = 8
# format_bytes' own bound (half a terabyte); a larger figure is printed in plain bytes.
_MAX_FORMATTED = 5e11


# -- workers: the targets of the chapter's Process calls (module level, so every start method finds
# them; not in __all__, as nothing in this process calls them) -----------------------------------
def bump(counter: Any, numbers: Any, times: int) -> None:
    """Add 1 to a shared Value and to every item of a shared Array, `times` times, under their
    locks (``+=`` is a read then a write: without the lock another process can come between)."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1
        with numbers.get_lock():
            for i in range(len(numbers)):
                numbers[i] += 1


def fill_block(name: str, shape: tuple, dtype: str, value: float) -> None:
    """Attach to the block `name`, view it as an array, fill it with `value`, detach."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    block = shared_memory.SharedMemory(name=name)
    try:
        array = np.ndarray(shape, dtype, buffer=block.buf)
        array[:] = value
        del array  # close() unmaps the pages: no array may point into them after
    finally:
        block.close()  # detach only: the creator unlinks


def change_shareable_list(name: str) -> None:
    """Attach to a ShareableList by name and change two of its items."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    items = shared_memory.ShareableList(name=name)
    try:
        items[0] = items[0] + 1
        items[2] = "child"  # fits: "kernel" reserved 8 bytes (the next multiple of 8 above 6)
    finally:
        items.shm.close()


def update_managed(shared_dict: Any, shared_list: Any) -> None:
    """Change a Manager's dict and list through their proxies: the server holds the change."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    shared_dict["changed by"] = f"child {os.getpid()}"
    shared_list.append("from the child")


# -- the resource tracker's warning, in a program of its own --------------------------------------
def leak_warning(timeout: float = 30.0) -> dict[str, str]:
    """Run a separate Python program that leaves a block linked; return what its exit printed.

    A separate program, not a multiprocessing child: a child shares the kernel's resource tracker,
    which would only complain when the kernel exits. If the tracker did not remove the block,
    it is unlinked here, so nothing is left in /dev/shm either way.
    """
    timeout = check_timeout("timeout", timeout)
    program = (
        "from multiprocessing import shared_memory\n"
        "block = shared_memory.SharedMemory(create=True, size=1 << 20)\n"
        "print(block.name, flush=True)\n"
        "block.close()   # closed, but nobody unlinks it\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=timeout, check=False)
    name = done.stdout.strip()
    still_there = bool(name) and os.path.exists(f"/dev/shm/{name}")
    if still_there:  # pragma: no cover - the tracker removes it on Linux
        unlink_shared_memory(shared_memory.SharedMemory(name=name))
    warning = [line.strip() for line in done.stderr.splitlines() if "leaked" in line]
    said = warning[0] if warning else "(nothing)"
    said = said[said.find("UserWarning"):] if "UserWarning" in said else said  # not the file path
    return {"block": name, "its program printed on exit": said,
            "still in /dev/shm afterwards": "yes (unlinked now)" if still_there else
            "no: the tracker unlinked it"}


# -- what each way of sharing costs ----------------------------------------------------------------
def _per_call_ns(fn: Callable[[int], Any], calls: int) -> float:
    """Nanoseconds per call: the best of `_BATCHES` batches (the least disturbed on a busy box)."""
    best = float("inf")
    per_batch = max(1, calls // _BATCHES)
    for _ in range(_BATCHES):
        t = time.perf_counter_ns()
        for i in range(per_batch):
            fn(i)
        best = min(best, (time.perf_counter_ns() - t) / per_batch)
    return best


def access_costs(accesses: int = 20_000, *, start_method: str | None = None) -> Table:
    """The cost of one read or write of one small item, for each way of sharing it."""
    check_int("accesses", accesses, 100, 1_000_000)
    ctx = mp_context(check_start_method(start_method))
    plain: dict[str, int] = {}
    value = ctx.Value("q", 0)  # with its lock, taken on every access
    raw = ctx.Value("q", 0, lock=False)  # no lock at all
    lock = value.get_lock()
    block = shared_memory.SharedMemory(create=True, size=8 * 1024)
    manager = None
    array = np.ndarray((1024,), np.int64, buffer=block.buf)
    try:
        manager = ctx.Manager()
        managed = manager.dict({"k": 0})

        def locked_add(i: int) -> None:
            with lock:
                raw.value += 1

        # label, the access itself, and how many calls (fewer for a round trip: it costs far more)
        accesses_of = [
            ("d['k'] = i on a plain dict", lambda i: plain.__setitem__("k", i), accesses),
            ("v.value = i, Value('q') (takes its lock)",
             lambda i: setattr(value, "value", i), accesses),
            ("v.value = i, Value('q', lock=False)", lambda i: setattr(raw, "value", i), accesses),
            ("with lock: v.value += 1", locked_add, accesses),
            ("a[i] = i, numpy array on SharedMemory",
             lambda i: array.__setitem__(i & 1023, i), accesses),
            ("d['k'] = i on a Manager dict", lambda i: managed.__setitem__("k", i),
             max(100, accesses // 50)),
            ("d['k'] read from a Manager dict", lambda i: managed["k"], max(100, accesses // 50)),
        ]
        return Table({"one access": label, "cost": _format_ns(_per_call_ns(fn, calls))}
                     for label, fn, calls in accesses_of)
    finally:
        array = None  # no numpy view may outlive the mapping
        if manager is not None:
            manager.shutdown()
        unlink_shared_memory(block)
        release_semaphores(value)


def _format_ns(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def per_mib_costs(rates: dict[str, float]) -> Table:
    """Milliseconds per MiB moved, from throughputs in bytes per second (e.g. a Sweep at 1 MiB)."""
    if not isinstance(rates, dict) or not rates:
        raise ValueError(f"rates must be a non-empty dict of channel name -> bytes per second, "
                         f"got {rates!r}")
    for channel, rate in rates.items():
        check_float(f"rates[{channel!r}]", rate, 1.0, 1e13)
    rows = Table()
    for channel, rate in sorted(rates.items(), key=lambda item: -item[1]):
        rows.append({"channel": channel, "per MiB": f"{(1 << 20) / rate * 1e3:.3f} ms",
                     "throughput": f"{rate / 1e9:.3g} GB/s"})
    return rows


def shared_memory_room() -> int | None:
    """Bytes a new SharedMemory block may take now: the free space of /dev/shm less a margin.

    None where there is no /dev/shm to measure (macOS keeps POSIX shared memory elsewhere).
    """
    try:
        stats = os.statvfs(_SHM_FOLDER)
    except (OSError, AttributeError):  # no such folder, or no statvfs (Windows)
        return None
    free = stats.f_bavail * stats.f_frsize
    return max(0, free - max(int(free * _SHM_SPARE_FRACTION), _SHM_SPARE_BYTES))


def check_shape(shape: object, itemsize: int = 8) -> tuple[int, ...]:
    """`shape` as a tuple of positive ints whose array (of `itemsize`-byte items) fits in shared
    memory now (see `shared_memory_room`); else ValueError naming shape, before any allocation."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)) or \
            not 1 <= len(shape) <= _MAX_DIMENSIONS or \
            not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise ValueError(f"shape must be a tuple of 1 to {_MAX_DIMENSIONS} positive integers, "
                         f"got {shape!r:.80}")
    check_int("itemsize", itemsize, 1, 64)
    nbytes = math.prod(shape) * itemsize  # Python ints: no overflow, unlike np.prod
    room = shared_memory_room()
    if room is not None and nbytes > room:
        needs = format_bytes(nbytes) if nbytes <= _MAX_FORMATTED else f"{nbytes:.3g} bytes"
        raise ValueError(f"shape {tuple(shape)} needs {needs} of shared memory, more than "
                         f"{_SHM_FOLDER} can spare now ({format_bytes(min(room, _MAX_FORMATTED))})"
                         f": choose a smaller shape")
    return tuple(shape)


def share_array_demo(shape: tuple[int, ...] = (1000, 1000), *,
                     start_method: str | None = None) -> dict:
    """A child fills a numpy array that lives in shared memory; the kernel sees it, uncopied."""
    shape = check_shape(shape)  # before allocating: a block past /dev/shm's room is a SIGBUS
    ctx = mp_context(check_start_method(start_method))
    block = shared_memory.SharedMemory(create=True, size=math.prod(shape) * 8)
    try:
        array = np.ndarray(shape, np.float64, buffer=block.buf)
        array[:] = 0.0
        with started(ctx.Process(target=fill_block, args=(block.name, shape, "float64", 7.0))):
            pass
        result = {"block": block.name, "size": format_bytes(block.size),
                  "kernel sees": float(array.mean())}
        del array
        return result
    finally:
        unlink_shared_memory(block)
