"""What one blocked greenlet costs in memory, next to one blocked thread, measured live.

Each measurement runs in a fresh child process (`helpers.runners.run_patched` with
``patch=False``) so the baseline is a clean interpreter, not a kernel that has already drawn
figures and cached modules::

    child: baseline RSS/VMS ─► start N workers, each blocked on an Event ─► RSS/VMS again
           ─► release them, join ─► report (after − before) / N

- a blocked greenlet keeps its Python frames and the slice of C stack it was using, copied to the
  heap when another greenlet needs the stack: a few KiB of resident memory;
- a blocked thread has its own OS stack: the kernel maps its full size as address space (8 MiB
  by default on Linux, from ``ulimit -s``; 16 MiB on macOS, where CPython sets the size
  itself, for every thread it starts) — but only the pages it touched are resident. On Linux,
  glibc also gives each thread that calls ``malloc`` an arena of its own, up to 8 per core, each
  reserving 64 MiB of address space: shared over many threads that adds little per thread, over
  a few it adds several times the stack (8 threads on 2 cores: about 72 MiB each).

>>> rows = compare_memory(greenlets=2_000, threads=1_000)    # doctest: +SKIP
>>> rows["greenlet"]["rss KiB each"], rows["thread"]["vms KiB each"]  # doctest: +SKIP
(6.9, 9198.0)
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from helpers.course import check_choice, check_int
from helpers.runners import run_patched

__all__ = ["WORKER_KINDS", "compare_memory", "memory_per_worker"]

WORKER_KINDS = ("greenlet", "thread")
# Upper bounds: 100,000 blocked greenlets is under 1 GiB; 2,000 threads is 16 GiB of address space
# at Linux's default stack size, far more than any demo needs and close to some systems' limits.
_MAX_WORKERS = {"greenlet": 100_000, "thread": 2_000}
# The measurement timeout: starting 2,000 threads on a loaded 2-core machine takes a few seconds.
_TIMEOUT_SECONDS = 60.0


def _usage() -> tuple[int, int]:
    import psutil

    gc.collect()
    info = psutil.Process().memory_info()
    return info.rss, info.vms


def memory_per_worker(kind: str, count: int) -> dict[str, Any]:
    """In this process: start `count` blocked workers of `kind`, report memory per worker."""
    check_choice("kind", kind, WORKER_KINDS)
    check_int("count", count, 1, _MAX_WORKERS[kind])
    if kind == "greenlet":
        import gevent
        from gevent.event import Event

        release = Event()
        gevent.sleep(0)  # create the hub first: it is not a per-greenlet cost
        rss0, vms0 = _usage()
        workers = [gevent.spawn(release.wait) for _ in range(count)]
        gevent.sleep(0.01)  # every greenlet starts and blocks in wait()
        blocked = sum(not g.dead for g in workers)
        rss1, vms1 = _usage()
        release.set()
        if len(gevent.joinall(workers, timeout=_TIMEOUT_SECONDS)) < count:
            gevent.killall(workers, timeout=1.0)
    else:
        release_t = threading.Event()
        rss0, vms0 = _usage()
        threads = [threading.Thread(target=release_t.wait, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        blocked = sum(t.is_alive() for t in threads)
        rss1, vms1 = _usage()
        release_t.set()
        deadline = time.monotonic() + _TIMEOUT_SECONDS
        for thread in threads:  # daemon threads: one that outlives its deadline dies with the child
            thread.join(max(0.0, deadline - time.monotonic()))
    return {
        "workers": count,
        "blocked when measured": blocked,
        "rss KiB each": round((rss1 - rss0) / count / 1024, 1),
        "vms KiB each": round((vms1 - vms0) / count / 1024, 1),
    }


def compare_memory(greenlets: int = 10_000, threads: int = 1_000) -> dict[str, dict[str, Any]]:
    """Measure both kinds, each in its own fresh child; ``{"greenlet": {…}, "thread": {…}}``."""
    check_int("greenlets", greenlets, 1, _MAX_WORKERS["greenlet"])
    check_int("threads", threads, 1, _MAX_WORKERS["thread"])
    return {
        kind: run_patched(memory_per_worker, kind, count, patch=False, trace=False,
                          timeout=_TIMEOUT_SECONDS).value
        for kind, count in (("greenlet", greenlets), ("thread", threads))
    }
