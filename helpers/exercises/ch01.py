"""Chapter 01 self-checks: exit codes, how many processes help, what a worker can receive, and
a script that starts processes the safe way.

- 01.4 runs the reader's script (written with ``%%writefile``) in a fresh Python, twice, with
  ``spawn`` and with ``forkserver`` as its first argument, and reads what it printed::

      check("01.4", path) ──> helpers.chapters.ch01_processes.run_script(path, method)
          ──> exit code, stdout, stderr ──> Points (the script's last line must be the sum)
"""

from __future__ import annotations

import importlib
import pickle
import signal
from pathlib import Path
from typing import Any

from helpers.course import available_start_methods, physical_cores, usable_cores

from . import Point, exercise

__all__: list[str] = []  # checks register themselves with `exercise`; nothing to import from here

# What the chapter measured for each way of ending; the keys are the ones the exercise names.
_EXPECTED_EXIT_CODES = {
    "returns": (0, "a process that returns normally exits with 0"),
    "raises": (1, "an uncaught exception gives exit code 1 (the traceback went to its stderr)"),
    "os._exit(3)": (3, "os._exit(n) exits at once with code n"),
    "SIGTERM": (-signal.SIGTERM, "a process killed by a signal gets minus the signal number: "
                                 f"SIGTERM is {int(signal.SIGTERM)}"),
}


@exercise("01.1", "Exit codes")
def _exit_codes(answer: Any):
    if not isinstance(answer, dict):
        yield Point(False, "answer should be a dict like {'returns': ..., 'raises': ..., "
                           "'os._exit(3)': ..., 'SIGTERM': ...}")
        return
    for key, (expected, why) in _EXPECTED_EXIT_CODES.items():
        if key not in answer:
            yield Point(False, f"missing the key {key!r}")
        elif answer[key] == expected:
            yield Point(True, f"{key}: {expected} — {why}")
        else:
            yield Point(False, f"{key}: {answer[key]!r} is not it — hint: look at the exitcode "
                               f"column of the table above for this case")


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


@exercise("01.3", "A function a spawned worker can find")
def _findable(answer: Any):
    if not callable(answer):
        yield Point(False, f"answer should be a function, got {answer!r}")
        return
    module = getattr(answer, "__module__", None)
    qualname = getattr(answer, "__qualname__", "")
    yield Point(module not in (None, "__main__", "__mp_main__"),
                f"it lives in the module {module!r}" if module not in (None, "__main__")
                else "it is defined in the notebook (__main__): a spawned worker has a fresh "
                     "__main__ without it — import one from helpers instead")
    yield Point("<lambda>" not in qualname and "<locals>" not in qualname,
                "it is a top-level function (found by name)" if "<" not in qualname
                else "lambdas and nested functions cannot be found by name: pickle sends "
                     "only 'module.name'")
    found = None
    if module and module != "__main__":
        try:
            found = getattr(importlib.import_module(module), qualname.split(".")[0], None)
        except ImportError:
            found = None
    if found is not None:
        try:
            pickle.loads(pickle.dumps(answer))
            yield Point(True, f"pickle sends it as {module}.{qualname}, and a new process can "
                              "import that")
        except Exception as exc:
            yield Point(False, f"it does not pickle: {exc}")


# -- 01.4 ------------------------------------------------------------------------------------
# The script computes the sum of squares of 0 … 999 in a pool of processes.
SQUARES_UP_TO = 1000
EXPECTED_SUM = sum(i * i for i in range(SQUARES_UP_TO))
# The script runs in well under a second; after this long it is stuck (a Pool waiting forever).
_SCRIPT_SECONDS = 10.0
# The message of the error a child raises when the script starts processes at its top level.
_BOOTSTRAP = "bootstrapping phase"


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
            yield Point(False, f"with {method}: a child re-ran the script's top level and tried "
                               "to start processes itself — see the cells on the script form "
                               "of the __main__ pitfall")
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
            yield Point(False, f"with {method}: 'top level' was printed more than once: the "
                               "children re-ran code that belongs under the __main__ guard")
        else:
            yield Point(True, f"with {method}: exit code 0, the right sum, the top level ran "
                              "once")
    text = Path(answer).read_text(encoding="utf-8", errors="replace")
    yield Point("sys.argv" in text or "argv" in text,
                "the start method comes from the command line" if "argv" in text else
                "the script should take its start method from sys.argv[1] (the check runs it "
                "with 'spawn' and with 'forkserver')")
