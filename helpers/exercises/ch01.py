"""Chapter 01 self-checks: exit codes, how many processes help, what a worker can receive."""

from __future__ import annotations

import importlib
import pickle
import signal
from typing import Any

from helpers.course import usable_cores

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


@exercise("01.2", "How many processes help")
def _best_count(answer: Any):
    cores = usable_cores()
    if isinstance(answer, bool) or not isinstance(answer, int):
        yield Point(False, f"answer should be a whole number of processes, got {answer!r}")
        return
    if answer == cores:
        yield Point(True, f"{answer}: one process per core; more only take turns on the same "
                          f"{cores} cores (and pay their start cost)")
    elif answer < cores:
        yield Point(False, f"{answer} leaves cores idle: this machine has {cores} usable cores — "
                           "see the scaling plot, where does the curve stop rising?")
    else:
        yield Point(False, f"{answer} is more processes than cores: past the core count they share "
                           "cores and the time stops improving. Count the cores "
                           "(os.sched_getaffinity(0) or os.cpu_count()).")


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
