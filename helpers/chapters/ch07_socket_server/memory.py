"""Memory per idle connection: thousands of clients held open against each server, RSS measured.

Each model serves in its own fresh child; a second child (the holder) opens the clients in steps
and reads the *server's* resident memory after each step, once every client has had one reply
(so the server has accepted it and set up its greenlet, thread or task)::

    kernel: idle_memory(models, steps)
      for each model:  start_server(model) ──► server child (its RSS is what is measured)
                       call(hold_idle)     ──► holder child: open steps[0] clients, one round
                                               trip each, read server RSS; open up to steps[1]...
                                           ◄── rows [(clients, rss bytes), ...]
                       kill the server
      ──► KiB per connection = slope of RSS against clients

Every client is a file descriptor in each of the two children. Linux allows a process a *soft*
number of open files (often 1,024) that it may raise itself up to a *hard* limit; both children
raise theirs (`raise_open_files`). Where the hard limit is too low, the steps shrink to what fits
and the result says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...course import LOOPBACK, check_choice, check_int
from . import handle as _handle
from .loadgen import MAX_CONNECTIONS, hold_idle
from .prefork import start_server
from .servers import MODELS

__all__ = ["idle_memory", "open_files_limit", "raise_open_files"]

# File descriptors a child needs besides its clients: Python, its imports, pipes, the listener.
_SPARE_FDS = 200
# Linux never lets a process hold more open files than this (the ceiling of fs.nr_open).
_MAX_NOFILE = 2**30
# Holding 10,000 clients takes a few seconds on a loaded 2-core machine; this bounds a stuck run.
_HOLD_SECONDS = 60.0


def open_files_limit() -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE of this process; a child inherits both."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    return (MAX_CONNECTIONS * 4 if soft == infinite else soft,
            MAX_CONNECTIONS * 4 if hard == infinite else hard)


def raise_open_files(needed: int) -> int:
    """Raise this process's soft open-file limit to `needed` (within the hard limit)."""
    import resource

    needed = check_int("needed", needed, 1, _MAX_NOFILE)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ValueError(f"needed must be at most {hard:,} open files, the most this system "
                         f"allows a process (the hard RLIMIT_NOFILE), got {needed:,}: use fewer "
                         f"connections, or raise the hard limit (e.g. `ulimit -Hn {needed}` as "
                         "root, or LimitNOFILE=)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


def idle_memory(models: Sequence[str] = MODELS, steps: Sequence[int] = (1_000, 4_000, 10_000),
                progress=None) -> dict[str, Any]:
    """Hold ``steps[-1]`` idle clients against each model; RSS rows and KiB per client."""
    if isinstance(models, str) or not models:
        raise ValueError(f"models must be a non-empty list drawn from {MODELS}, got {models!r}")
    for model in models:
        check_choice("models", model, MODELS)
    if isinstance(steps, str) or not steps:
        raise ValueError(f"steps must be a non-empty list of client counts, got {steps!r}")
    for step in steps:
        check_int("steps", step, 1, MAX_CONNECTIONS)
    if list(steps) != sorted(set(steps)):
        raise ValueError(f"steps must be increasing client counts, got {steps!r}")
    _, hard = open_files_limit()
    fits = hard - _SPARE_FDS
    note = ""
    if steps[-1] > fits:
        kept = tuple(s for s in steps if s <= fits) or (max(1, fits),)
        note = (f"this system allows a process at most {hard:,} open files (the hard "
                f"RLIMIT_NOFILE), so the run holds at most {kept[-1]:,} clients, not "
                f"{steps[-1]:,}")
        steps = kept
    needed = steps[-1] + _SPARE_FDS
    results: dict[str, Any] = {"note": note, "steps": list(steps), "models": {}}
    for index, model in enumerate(models):
        if progress is not None:
            progress(index / len(models), f"{model}: holding {steps[-1]:,} clients")
        server = start_server(model, idle_timeout=None, connections_hint=needed)
        try:
            held = _handle.call(hold_idle, LOOPBACK, server.info["port"], list(steps),
                                server.info["pids"][0], _HOLD_SECONDS, needed,
                                timeout=_HOLD_SECONDS + 10)
        finally:
            # Killed, not stopped: nothing of its book is needed, and 10,000 threads woken at once
            # to close take seconds to wind down (each needs the GIL to exit).
            server.kill()
        rows = held["rows"]
        clients = [c for c, _ in rows]
        rss = [r for _, r in rows]
        results["models"][model] = {
            "rows": rows, "errors": held["errors"], "error kinds": held["error kinds"],
            "KiB per connection": _slope(clients, rss) / 1024,
        }
    return results


def _slope(x: list[int], y: list[int]) -> float:
    """Least-squares slope of y on x (bytes per client)."""
    n = len(x)
    mean_x, mean_y = sum(x) / n, sum(y) / n
    var = sum((a - mean_x) ** 2 for a in x)
    return sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y)) / var if var else 0.0
