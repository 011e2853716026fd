"""Every public callable, given bad values, answers at once with an error that names the parameter.

For each public module of ``helpers``, `_fuzz.py` runs in a subprocess (so a hang or a leftover
cannot harm this run) and calls each public callable with, in place of one valid argument at a
time, the bad values of that parameter's kind: zero-or-negative, huge, NaN, infinite, wrong type,
an empty sequence or a string where a list is expected. Each call must raise `ValueError` or
`TypeError` naming the parameter, within a second, and leave no process behind. Values that are
valid for one parameter (an empty list of processes to stop, -1 as an exit code) are listed in
`ALLOWED` with the reason.
"""

from __future__ import annotations

import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import helpers

_FUZZ = Path(__file__).with_name("_fuzz.py")
# How long the whole fuzz may take: a few thousand calls that each answer in microseconds, plus
# any call that does real work until its one-second limit stops it, plus the imports.
_GROUP_SECONDS = 300

# (callable, parameter, value) that is not an error, and why.
ALLOWED = {
    ("stop_processes", "processes", "[]"): "nothing to stop is a valid request",
    ("process_pool", "warnings_to", "[]"): "an empty list to collect warnings into",
    ("process_executor", "warnings_to", "[]"): "an empty list to collect warnings into",
    ("alive_counts", "skip", "[]"): "skipping no lane is a valid choice",
    ("with_waits", "skip", "[]"): "skipping no lane is a valid choice",
    ("with_waits", "polling", "[]"): "a run without polling spans recorded",
}
# Names a message may use for a parameter (a size named for what it counts).
ALIASES = {"tasks": ("tasks", "items"), "items": ("items",), "processes": ("processes",)}


def _public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(helpers.__path__, "helpers."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


def _names_parameter(record: dict) -> bool:
    words = ALIASES.get(record["parameter"], (record["parameter"],))
    message = record.get("message", "").lower()
    return any(re.search(re.escape(w.lower()).replace("_", "[ _]"), message) for w in words)


def _problem(record: dict) -> str | None:
    short = record["callable"].rsplit(".", 1)[1]
    where = f"{short}({record['parameter']}={record.get('value')})"
    if record["outcome"] == "no baseline":
        return f"{short}: no valid baseline for required {record['missing']} (add it to _fuzz.py)"
    if record.get("left_behind"):
        return f"{where} left processes behind: {record['left_behind']}"
    if (short, record["parameter"], record.get("value")) in ALLOWED:
        return None
    if record["outcome"] == "hung":
        return f"{where} did not answer within a second (no validation before work?)"
    if record["outcome"] == "returned":
        return f"{where} was accepted"
    if record["type"] not in ("ValueError", "TypeError"):
        return f"{where} raised {record['type']}: {record['message']}"
    if not _names_parameter(record):
        return f"{where} raised an error that does not name it: {record['message']}"
    return None


def _group(module: str) -> str:
    """Every module is fuzzed in one subprocess (about 10 s in all: the imports are paid once,
    and each call is bounded by the harness's own one-second alarm)."""
    return "helpers"


_RESULTS: dict[str, dict] = {}


def _records(module: str) -> list[dict]:
    group = _group(module)
    if group not in _RESULTS:
        members = [m for m in _public_modules() if _group(m) == group]
        # Thousands of calls with odd values make files (scripts, scratch folders) along the
        # way: they go to a temporary folder of their own, removed afterwards.
        scratch = tempfile.mkdtemp(prefix="cc-surface-")
        try:
            done = subprocess.run([sys.executable, str(_FUZZ), *members], capture_output=True,
                                  text=True, timeout=_GROUP_SECONDS,
                                  env={**os.environ, "TMPDIR": scratch})
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        assert done.returncode == 0, done.stderr[-3000:]
        _RESULTS[group] = json.loads(done.stdout.strip().splitlines()[-1])
    return _RESULTS[group][module]


# Alone (timing): a call that takes over a second counts as one that did work, and on a machine
# shared with other tests a first call's imports can take that long.
@pytest.mark.timing
@pytest.mark.timeout(_GROUP_SECONDS + 30)
@pytest.mark.parametrize("module", _public_modules())
def test_bad_values_get_a_clear_error(module):
    records = _records(module)
    problems = [p for p in map(_problem, records) if p]
    assert not problems, f"{len(problems)} of {len(records)} calls:\n" + "\n".join(problems)


def test_the_fuzz_finds_a_missing_check(tmp_path):
    """The harness itself: a function that validates nothing is caught on every count."""
    module = tmp_path / "cc_fuzz_probe.py"
    module.write_text("__all__ = ['loose']\n"
                      "def loose(count: int = 1, seconds: float = 0.1) -> int:\n"
                      "    return count\n")
    done = subprocess.run([sys.executable, "-c",
                           f"import sys; sys.path[:0] = [{str(tmp_path)!r}, "
                           f"{str(_FUZZ.parent)!r}]; import _fuzz; _fuzz.main('cc_fuzz_probe')"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    records = json.loads(done.stdout.strip().splitlines()[-1])["cc_fuzz_probe"]
    assert {r["parameter"] for r in records} == {"count", "seconds"}
    assert all(_problem(r) for r in records), "a function without checks passed the fuzz"
