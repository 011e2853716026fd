"""Course-wide switches and checks: quick mode, start methods, parameter validation, the machine.

Every chapter imports from here, so a parameter error reads the same everywhere::

    >>> check_int("workers", 0, 1, 32)
    Traceback (most recent call last):
    ...
    ValueError: workers must be an integer from 1 to 32, got 0
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import sys
from collections.abc import Sequence

__all__ = [
    "QUICK",
    "START_METHODS",
    "MachineInfo",
    "available_start_methods",
    "check_choice",
    "check_float",
    "check_int",
    "default_start_method",
    "describe_machine",
    "mp_context",
    "physical_cores",
    "usable_cores",
]

# Tests and CI execute every notebook with CC_QUICK=1: chapters then pick small sizes, so the whole
# course runs in seconds while a reader's run uses sizes that show the effect clearly.
QUICK = os.environ.get("CC_QUICK", "").strip().lower() in ("1", "true", "yes")

START_METHODS = ("fork", "spawn", "forkserver")
# What the fork server imports once, before it forks any child: each child then starts with the
# course's worker code already loaded (measured here in a kernel: ~6 ms per process instead of
# ~50 ms). Takes effect when the server starts, i.e. at the first forkserver process.
_FORKSERVER_PRELOAD = ["helpers.processes", "helpers.pools", "helpers.workloads"]


def check_int(name: str, value: object, low: int, high: int) -> int:
    """Return `value` if it is an integer in [low, high], else raise ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_float(name: str, value: object, low: float, high: float) -> float:
    """Return `value` as a float if it is a number in [low, high], else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, choices: Sequence[object]) -> object:
    """Return `value` if it is one of `choices`, else raise ValueError listing them."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def available_start_methods() -> list[str]:
    """The start methods this OS offers, in the course's order (Windows: spawn only)."""
    offered = multiprocessing.get_all_start_methods()
    return [m for m in START_METHODS if m in offered]


def default_start_method() -> str:
    """The start method this Python uses when a program does not choose one."""
    # Asking fixes the default for this process, exactly as starting the first Process would.
    return multiprocessing.get_start_method()


def mp_context(method: str | None = None):
    """`multiprocessing.get_context(method)`, with the name checked against this OS.

    The course always chooses a start method explicitly: defaults differ between macOS and Windows
    (spawn), Linux up to Python 3.13 (fork) and Linux from 3.14 (forkserver).
    """
    if method is None:
        method = default_start_method()
    check_choice("start_method", method, available_start_methods())
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(_FORKSERVER_PRELOAD)
    return ctx


def usable_cores() -> int:
    """Cores this process may run on: the affinity mask where the OS has one (Linux), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except Exception:  # psutil may not know on some virtual machines
        return None


class MachineInfo(dict):
    """A dict that shows as a two-column table in a notebook."""

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in self.items()
        )
        return f"<table>{rows}</table>"


def describe_machine() -> MachineInfo:
    """What the reader's machine has: cores, Python, OS and start methods."""
    return MachineInfo({
        "logical cores": os.cpu_count(),
        "physical cores": physical_cores(),
        "cores this process may use": usable_cores(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "GIL": _gil_state(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "default start method": default_start_method(),
        "start methods offered": ", ".join(available_start_methods()),
        "GIL switch interval": f"{sys.getswitchinterval() * 1000:g} ms",
    })


def _gil_state() -> str:
    enabled = getattr(sys, "_is_gil_enabled", None)  # Python 3.13+ free-threaded builds
    if enabled is None:
        return "enabled (always, before Python 3.13)"
    return "enabled" if enabled() else "disabled (free-threaded build)"
