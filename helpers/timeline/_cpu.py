"""Which core the calling thread runs on: the one question every recorder asks per span.

Kept apart from the recorders, with nothing but ``sys`` and ``threading`` around it, so that a
spawned child that only needs the core (`helpers.runners._process_child`) can ask without
loading the rest of the engine. For the same reason the fast way in (glibc's ``sched_getcpu``
through ``ctypes``, whose import costs a fresh interpreter a few ms) is taken only once a process
has asked often enough to repay it; until then each answer is read from ``/proc`` (about 10 µs).
"""

from __future__ import annotations

import sys
import threading

__all__ = ["current_cpu"]


def _native_sched_getcpu():
    """glibc's ``sched_getcpu()``: the core the *calling thread* runs on, in about 50 ns."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (OSError, AttributeError):  # musl without it, or no dynamic loader
        return None
    function.restype = ctypes.c_int
    function.argtypes = []
    return function if function() >= 0 else None


# ctypes costs a few ms to import in a fresh interpreter and a /proc read about 10 µs: after this
# many reads the native call has paid for itself. A process that records two spans (a
# `run_processes` child) never loads it; a recorder of thousands of spans loads it at once.
_READS_BEFORE_NATIVE = 256
_reads = 0
_sched_getcpu = None
_native_tried = False  # looked for once: where glibc lacks it, /proc answers from then on


def _proc_stat_cpu() -> int | None:
    """The calling thread's core from ``/proc/self/task/<tid>/stat`` (field 39, "processor")."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[36])  # fields after the command name start at field 3
    except (OSError, IndexError, ValueError):
        return None


def current_cpu() -> int | None:
    """The core the calling thread is running on now, or None where the OS does not say.

    Each thread's own core — not its process's main thread's, which is what
    ``psutil.Process().cpu_num()`` reads. On Linux it reads ``/proc/self/task/<tid>/stat`` (about
    10 µs) for the first few hundred calls of a process, then asks ``sched_getcpu()`` (tens of
    ns) where glibc has it; macOS and Windows do not tell. Recorders call it once per span, at its
    end.
    """
    global _reads, _sched_getcpu, _native_tried
    if _sched_getcpu is not None:
        value = _sched_getcpu()
        return value if value >= 0 else None
    if not sys.platform.startswith("linux"):
        return None
    if _reads >= _READS_BEFORE_NATIVE and not _native_tried:
        _native_tried = True  # (two threads may both get here; both then find the same call)
        _sched_getcpu = _native_sched_getcpu()
    _reads += 1
    return _proc_stat_cpu()
