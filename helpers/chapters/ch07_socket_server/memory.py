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

Every client is a file descriptor in each of the two children; both raise their open-file
limit (`limits.raise_open_files`). Where the hard limit is too low, the steps shrink to what fits
and the result says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...course import LOOPBACK, check_choice, check_int
from . import handle as _handle
from .limits import MAX_CONNECTIONS, open_files_limit
from .loadgen import hold_idle
from .models import MODELS
from .prefork import start_server

__all__ = ["idle_memory"]

# File descriptors a child needs besides its clients: Python, its imports, pipes, the listener.
_SPARE_FDS = 200
# Holding 10,000 clients takes a few seconds on a loaded 2-core machine; this bounds a stuck run.
_HOLD_SECONDS = 60.0


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
