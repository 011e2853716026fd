"""Chapter 01 self-checks: predicting exit codes, how many processes help, a module function a
spawned worker can find, and a script that starts processes the safe way.

- 01.1 and 01.2 are in ``01a_processes``, 01.3 and 01.4 in ``01b_start_methods``.
- 01.3 sends the reader's function to a fresh *spawn* worker (`run_in_fresh_process`) and reads
  what came back: the worker found it, or died looking for it, and why.
- 01.4 runs the reader's script (written with ``%%writefile``) in a fresh Python, twice, with
  ``spawn`` and with ``forkserver`` as its first argument, and reads what it printed::

      check("01.4", path) ──> helpers.chapters.ch01_processes.run_script(path, method)
          ──> exit code, stdout, stderr ──> Points (the script's last line must be the sum)
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from helpers.course import available_start_methods, physical_cores, usable_cores

from . import Point, exercise

__all__: list[str] = []  # checks register themselves with `exercise`; nothing to import from here

# Four ways of ending that the table in 01a does not show; each is reasoned from one row of it.
# tests/chapters/test_ch01_processes.py runs each case in a real process to hold these to it.
_EXPECTED_EXIT_CODES = {
    "returns 7": (0, "a Process keeps no return value: it returned, so it ended normally",
                  "what happens to the value a target returns? (the cell that starts a process "
                  "by hand)"),
    "sys.exit(5)": (5, "sys.exit(n) raises SystemExit(n): the process exits with n, after cleanup",
                    "compare with the os._exit(3) row: sys.exit(n) also ends with a code, only "
                    "after the cleanup"),
    "KeyboardInterrupt": (1, "an exception nobody catches, whatever its kind: exit code 1",
                          "nobody catches it in the child: which row of the table is that?"),
    "kill()": (-signal.SIGKILL, "killed by a signal: minus its number (SIGKILL is "
                                f"{int(signal.SIGKILL)})",
               "kill() sends SIGKILL where terminate() sends SIGTERM: how is the SIGTERM row "
               "written? (signal.SIGKILL gives the number)"),
}


@exercise("01.1", "Exit codes you have not seen yet")
def _exit_codes(answer: Any):
    if not isinstance(answer, dict):
        yield Point(False, "answer should be a dict like {'returns 7': ..., 'sys.exit(5)': ..., "
                           "'KeyboardInterrupt': ..., 'kill()': ...}")
        return
    for key, (expected, why, hint) in _EXPECTED_EXIT_CODES.items():
        if key not in answer:
            yield Point(False, f"missing the key {key!r}")
        elif isinstance(answer[key], int) and answer[key] == expected:
            yield Point(True, f"{key}: {expected} — {why}")
        else:
            yield Point(False, f"{key}: {answer[key]!r} is not it — {hint}")


def _core_counts() -> tuple[int, int]:
    """(physical cores this process can use, logical cores it can use)."""
    logical = usable_cores()
    physical = physical_cores() or logical
    return min(physical, logical), logical


@exercise("01.2", "How many processes help")
def _best_count(answer: Any):
    physical, logical = _core_counts()
    if isinstance(answer, bool) or not isinstance(answer, int):
        yield Point(False, f"answer should be a whole number of processes, got {answer!r}")
        return
    smt = (f" This machine has {physical} physical cores and {logical} logical ones (SMT: two "
           "hardware threads per core share its arithmetic units), so pure-Python work stops "
           f"scaling somewhere from {physical} to {logical} processes: either is what you may "
           "have measured.") if physical < logical else ""
    if physical <= answer <= logical:
        yield Point(True, f"{answer}: one process per core; more only take turns on the same "
                          f"cores (and pay their start cost).{smt}")
    elif answer < physical:
        yield Point(False, f"{answer} leaves cores idle — see the scaling plot: where does the "
                           "curve stop rising, and how many cores does this process have?")
    else:
        yield Point(False, f"{answer} is more processes than this process has cores: past the core "
                           "count they share cores and the time stops improving — count the "
                           "cores it may use (the machine table at the top).")


# A spawned worker starts in well under a second; 30 s means something else is wrong.
_FIND_SECONDS = 30.0


@exercise("01.3", "A function a spawned worker can find")
def _findable(answer: Any):
    from helpers.chapters.ch01_processes import run_in_fresh_process

    if not callable(answer):
        yield Point(False, f"answer should be a function (shapes.cube), got {answer!r:.80}")
        return
    module = getattr(answer, "__module__", None)
    name = f"{module}.{getattr(answer, '__qualname__', '?')}"
    run = run_in_fresh_process(answer, 3, start_method="spawn", timeout=_FIND_SECONDS)
    if run.ok:
        yield Point(True, f"a fresh spawn worker found {name} by importing {module}, and ran it")
        right = run.value == 27 and _safe_call(answer, -2) == -8
        yield Point(right, "it computes x ** 3" if right else
                    f"it returned {run.value!r} for 3 in the worker: a cube of 3 is 27")
    elif module in (None, "__main__"):
        yield Point(False, f"{name} is defined in the notebook (__main__): a spawned worker starts "
                           f"a fresh __main__ without it and died ({run.error:.120})")
    elif "<lambda>" in name or "<locals>" in name:
        yield Point(False, f"pickle sends a function as its module and its own name, {name}: "
                           "that name cannot be looked up in the module (a lambda is called "
                           "<lambda> whatever variable holds it; a nested function lives in "
                           "another function's locals): a worker finds only a function "
                           "whose own name is a top-level name of its module")
    elif "ModuleNotFoundError" in run.worker_stderr + run.error:
        yield Point(False, f"the worker could not import {module!r}: it imports by name from its "
                           "sys.path, which it copies from the kernel's — is the module's folder "
                           "on sys.path?")
    else:
        yield Point(False, f"the spawn worker could not run it: {run.error:.160}"
                    + (f" (the worker said: {run.worker_stderr:.160})" if run.worker_stderr
                       else ""))


def _safe_call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # the reader's code: any failure is an answer to report
        return exc


# -- 01.4 ------------------------------------------------------------------------------------
# The script computes the sum of squares of 0 … 999 in a pool of processes.
SQUARES_UP_TO = 1000
EXPECTED_SUM = sum(i * i for i in range(SQUARES_UP_TO))
# The script runs in well under a second; after this long it is stuck (a Pool waiting forever).
_SCRIPT_SECONDS = 10.0
# The message of the error a child raises when the script starts processes at its top level.
_BOOTSTRAP = "bootstrapping phase"
# Where a script's top level runs again, besides the parent (CPython Lib/multiprocessing/spawn.py
# _fixup_main_from_path, forkserver.py main; the fork server's "__main__" preload was dead code
# until gh-126631, fixed in 3.13.8 and 3.14).
_WHERE_TOP_LEVEL_RAN = {
    "spawn": "every child re-imported the script as __mp_main__ and ran its top level",
    "forkserver": "the script's top level ran again outside the parent (in the fork server, "
                  "which imports the script once, from Python 3.14; in every child on older "
                  "Pythons, whose fork server skips that import)",
}


@exercise("01.4", "A script that starts processes safely")
def _script(answer: Any):
    from helpers.chapters.ch01_processes import run_script

    if not isinstance(answer, (str, Path)) or not str(answer).endswith(".py"):
        yield Point(False, "answer should be the path of your script (the name after "
                           "%%writefile)")
        return
    if not Path(answer).is_file():
        yield Point(False, f"there is no file {str(answer)!r}: run the %%writefile cell")
        return
    methods = [m for m in ("spawn", "forkserver") if m in available_start_methods()]
    for method in methods:
        run = run_script(answer, method, timeout=_SCRIPT_SECONDS, stop_on=_BOOTSTRAP)
        lines = run.stdout.strip().splitlines()
        if _BOOTSTRAP in run.stderr or "RuntimeError" in run.stderr:
            yield Point(False, f"with {method}: {_WHERE_TOP_LEVEL_RAN[method]}, and tried to start "
                               "processes there — see the cells on the script form of the "
                               "__main__ pitfall")
        elif run.returncode is None:
            yield Point(False, f"with {method}: still running after {_SCRIPT_SECONDS:g} s and "
                               "killed — did a worker die before it could take a task?")
        elif run.returncode != 0:
            yield Point(False, f"with {method}: exit code {run.returncode}; stderr ends with "
                               f"{run.last_error()!r}")
        elif not lines or lines[-1].strip() != str(EXPECTED_SUM):
            yield Point(False, f"with {method}: the last line printed should be the sum of the "
                               f"squares of 0 … {SQUARES_UP_TO - 1}; it is "
                               f"{(lines[-1] if lines else '(nothing)')!r}")
        elif sum("top level" in line for line in lines) > 1:
            yield Point(False, f"with {method}: 'top level' was printed more than once: code "
                               "outside the __main__ guard ran again in another process "
                               f"({_WHERE_TOP_LEVEL_RAN[method]})")
        else:
            yield Point(True, f"with {method}: exit code 0, the right sum, the top level ran "
                              "once")
    text = Path(answer).read_text(encoding="utf-8", errors="replace")
    yield Point("sys.argv" in text or "argv" in text,
                "the start method comes from the command line" if "argv" in text else
                "the script should take its start method from sys.argv[1] (the check runs it "
                "with 'spawn' and with 'forkserver')")
