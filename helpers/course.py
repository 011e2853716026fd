"""Course-wide switches and checks: quick mode, start methods, parameter validation, the machine.

Every chapter imports from here, so a parameter error reads the same everywhere::

    >>> check_int("workers", 0, 1, 32)
    Traceback (most recent call last):
    ...
    ValueError: workers must be an integer from 1 to 32, got 0
"""

from __future__ import annotations

import ipaddress
import math
import multiprocessing
import os
import platform
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = [
    "QUICK",
    "START_METHODS",
    "LOOPBACK",
    "MachineInfo",
    "available_start_methods",
    "check_callable",
    "check_choice",
    "check_float",
    "check_int",
    "check_loopback_host",
    "check_start_method",
    "check_start_methods",
    "check_timeout",
    "default_start_method",
    "describe_machine",
    "kernel_safe_start_method",
    "mp_context",
    "one_core_note",
    "physical_cores",
    "preload_in_forkserver",
    "quiet_fork_warnings",
    "usable_cores",
    "work_folder",
]

# Tests and CI execute every notebook with CC_QUICK=1: chapters then pick small sizes, so the whole
# course runs in seconds while a reader's run uses sizes that show the effect clearly.
QUICK = os.environ.get("CC_QUICK", "").strip().lower() in ("1", "true", "yes")

START_METHODS = ("fork", "spawn", "forkserver")
# The environment variable that overrides the kernel-safe default (see kernel_safe_start_method).
START_METHOD_VARIABLE = "CC_START_METHOD"
# What the fork server imports once, before it forks any child: each child then starts with the
# course's worker code already loaded (measured here in a kernel: ~6 ms per process instead of
# ~50 ms). Takes effect when the server starts, i.e. at the first forkserver process.
_FORKSERVER_PRELOAD = ["helpers.runners.processes", "helpers.runners.pools", "helpers.workloads"]
# Where the reader's own files go (modules written with %%writefile, answers): a folder of the
# course they keep and can find, git-ignored. CC_WORK moves it (the tests point it at a private
# temporary folder, so a test run leaves nothing in the reader's).
WORK_VARIABLE = "CC_WORK"
# No wait in the course is meant to last an hour: a longer timeout is a typo (3600 for 3.6), and
# the standard library rejects or overflows on infinite ones.
MAX_TIMEOUT_SECONDS = 3600.0
# The one address every server of the course binds and every client connects to: the loopback
# interface reaches this machine only, so a demo server (an echo server, a chat room, a test
# site, with no authentication and no limits) is never reachable from the network. An empty
# host or "0.0.0.0" would listen on every interface: `check_loopback_host` refuses them.
LOOPBACK = "127.0.0.1"


def check_int(name: str, value: object, low: int, high: int) -> int:
    """Return `value` if it is an integer in [low, high], else raise ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_float(name: str, value: object, low: float, high: float) -> float:
    """Return `value` as a float if it is a number in [low, high], else raise ValueError.

    NaN is never in range (every comparison with it is false) and infinities only where a bound is.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and math.isnan(value)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def check_timeout(name: str, value: object, low: float = 0.001,
                  high: float = MAX_TIMEOUT_SECONDS) -> float:
    """A timeout in seconds: a finite positive number (never 0, negative, NaN or infinite)."""
    return check_float(name, value, low, high)


def check_loopback_host(name: str, value: object) -> str:
    """Return `value` if it names this machine's loopback interface, else raise ValueError.

    Accepted: an IPv4 address in 127.0.0.0/8, the IPv6 ``::1``, or ``"localhost"``. Refused:
    anything else, above all ``""`` and ``"0.0.0.0"``, which bind every interface.
    """
    if isinstance(value, str) and value == "localhost":
        return value
    try:
        loopback = isinstance(value, str) and ipaddress.ip_address(value).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"{name} must be a loopback address (127.0.0.0/8, ::1 or 'localhost', "
                         f"e.g. {LOOPBACK!r}): the course never listens beyond this machine, "
                         f"got {value!r}")
    return value


def check_callable(name: str, value: object) -> object:
    """Return `value` if it can be called, else raise TypeError naming it."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r}")
    return value


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
    """The start method this Python uses when a program does not choose one.

    Asked without fixing it: ``multiprocessing.get_start_method()`` (without ``allow_none``) would
    set the default for this whole process, and a reader's later ``set_start_method()`` would fail.
    """
    chosen = multiprocessing.get_start_method(allow_none=True)
    if chosen is not None:
        return chosen
    # The documented defaults: spawn on Windows and macOS; on other POSIX systems fork up to
    # Python 3.13 and forkserver from 3.14.
    if sys.platform in ("win32", "darwin"):
        return "spawn"
    return "forkserver" if sys.version_info >= (3, 14) else "fork"


def kernel_safe_start_method() -> str:
    """The start method the course uses by default in a notebook kernel: never ``fork``.

    A kernel always runs threads (I/O, heartbeat, control); forking a process that has threads can
    deadlock the child, which is why Python 3.12+ warns and 3.14 makes forkserver the default on
    POSIX systems other than macOS. forkserver forks from a clean single-threaded server (fast);
    spawn (macOS, Windows) starts a fresh interpreter.

    ``CC_START_METHOD=spawn`` (or ``forkserver``) in the environment chooses instead: on Linux it
    runs the course the way macOS does (spawn), e.g. ``CC_START_METHOD=spawn make test``.
    ``fork`` is refused there, for the reason above.
    """
    offered = available_start_methods()
    chosen = os.environ.get(START_METHOD_VARIABLE, "").strip()
    if chosen:
        safe = [m for m in offered if m != "fork"]
        if chosen not in safe:
            raise ValueError(f"{START_METHOD_VARIABLE} must be one of {', '.join(safe)} "
                             f"(fork is not safe in a kernel), got {chosen!r}")
        return chosen
    return "forkserver" if "forkserver" in offered else "spawn"


def check_start_method(value: object, name: str = "start_method") -> str:
    """One rule for every function: ``None`` means `kernel_safe_start_method()`, anything else
    must be a start method this OS offers."""
    if value is None:
        return kernel_safe_start_method()
    return check_choice(name, value, available_start_methods())


def check_start_methods(value: object, name: str = "start_methods") -> list[str]:
    """A non-empty list of offered start methods; ``None`` means all of them.

    A string is refused (it would otherwise be read letter by letter).
    """
    if value is None:
        return available_start_methods()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list drawn from "
                         f"{available_start_methods()}, got {value!r}")
    return [check_choice(f"each of {name}", m, available_start_methods()) for m in value]


@contextmanager
def quiet_fork_warnings(start_method: str) -> Iterator[list[str]]:
    """Capture, instead of show, the 3.12+ "multi-threaded, use of fork()" DeprecationWarning.

    Yields a list that receives the warning messages, so a demo can return them as data. Other
    start methods never warn; for them this does nothing.
    """
    check_choice("start_method", start_method, available_start_methods())
    caught: list[str] = []
    if start_method != "fork":
        yield caught
        return
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always", DeprecationWarning)
        try:
            yield caught
        finally:
            caught.extend(str(w.message) for w in recorded)


def preload_in_forkserver(*modules: str) -> None:
    """Add modules for the fork server to import before it forks any child.

    A chapter whose workers live in its own modules calls this when it is imported, so each of its
    forkserver children starts with that code loaded (tens of milliseconds less per process). It
    takes effect if the fork server has not started yet in this kernel.
    """
    for module in modules:
        if not isinstance(module, str) or not module.startswith("helpers."):
            raise ValueError(f"modules must be names of helpers modules, got {module!r}")
        if module not in _FORKSERVER_PRELOAD:
            _FORKSERVER_PRELOAD.append(module)


def mp_context(method: str | None = None):
    """`multiprocessing.get_context(method)`, with the name checked against this OS.

    The course always chooses a start method explicitly: defaults differ between macOS and Windows
    (spawn) and other POSIX systems (fork up to Python 3.13, forkserver from 3.14). ``None`` means
    `kernel_safe_start_method()`, never the interpreter's default (which may be fork).
    """
    method = check_start_method(method)
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(_FORKSERVER_PRELOAD)
    return ctx


def usable_cores() -> int:
    """Cores this process may run on: the affinity mask where the OS has one (Linux), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def one_core_note(here: str, with_more: str, *, cores: int | None = None) -> str:
    """A sentence for a speed-up demo when this process may use one core only, else "".

    `here` says what one core does to the figures just printed ("the processes take turns on it
    and cannot beat serial"), `with_more` what the reader would see with more cores ("two
    processes would take about half the serial time"). On one core a low speed-up is the
    machine's answer, not a busy moment's: running the cell again does not change it. `cores`
    is the cores this process may use, `usable_cores()` unless given.
    """
    for name, value in (("here", here), ("with_more", with_more)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty sentence, got {value!r:.80}")
    cores = usable_cores() if cores is None else check_int("cores", cores, 1, 1 << 16)
    if cores > 1:
        return ""
    return (f"(this machine gives the course one core — its affinity mask allows only one — so "
            f"{here}; with two free cores or more, {with_more})")


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


def work_folder(chapter: str) -> str:
    """The folder for the reader's files of `chapter` ("ch04"): ``notebooks/work/ch04``, made once.

    It lives beside the notebooks (a kernel's working directory is its notebook's folder), so the
    reader finds their modules in JupyterLab's file browser and keeps them between sessions; it is
    git-ignored. It is never a predictable path in a shared temporary folder, where another user of
    the machine could plant a module that the kernel then imports; the folder is private to its
    owner (mode 0700). ``CC_WORK`` in the environment puts it elsewhere.
    """
    if not isinstance(chapter, str) or not chapter.isidentifier():
        raise ValueError(f"chapter must be a short name such as 'ch04', got {chapter!r}")
    base = os.environ.get(WORK_VARIABLE) or os.path.join(os.getcwd(), "work")
    folder = os.path.join(base, chapter)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder
