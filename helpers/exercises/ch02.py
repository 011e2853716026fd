"""Chapter 02 self-checks: a worker module that answers through a Queue; the fastest channel.

- 02.1 runs the reader's worker: the answer is the module they wrote with ``%%writefile`` (its
  path, or the imported module). The check loads it in a child process by path (so spawn and
  forkserver find it too), sends `RECORDS` records through a Queue and checks every reply, the
  closing ``None`` and that the child ended by itself;
- 02.2 asks which channel moves one 100 MiB array fastest from one process to another, and
  measures the three candidates live to say whether the pick holds on this machine.
"""

from __future__ import annotations

import importlib.util
import os
import queue as queue_module
import tempfile
import time
import types
from functools import lru_cache
from typing import Any

from helpers.course import mp_context
from helpers.runners.cleanup import ignore_sigint

from . import Point, exercise

__all__ = ["CANDIDATES", "RECORDS", "WORKER_NAME", "scratch_dir"]

RECORDS = 10_000  # records the check sends through the reader's worker
WORKER_NAME = "square_records"  # the function the reader's module must define
# The reader's worker gets this long to answer all records: a Queue moves ~20,000 small messages
# per second each way even on a busy 2-core machine, so a right answer needs about a second.
_WORKER_SECONDS = 10.0
# 02.2: the channels to choose from, and the array's size.
CANDIDATES = ("Queue", "Pipe", "shared memory")
_ARRAY_BYTES = 100 << 20  # the 100 MiB array of the exercise
_ARRAY_BYTES_QUICK = 16 << 20  # the test suite's quick mode: the same ranking, a sixth the bytes


def scratch_dir() -> str:
    """A folder outside the course's files for the modules a reader writes (made if missing)."""
    path = os.path.join(tempfile.gettempdir(), "cores-coroutines-ch02")
    os.makedirs(path, exist_ok=True)
    return path


def _record(i: int) -> dict[str, int]:
    """The i-th record the check sends."""
    return {"id": i, "x": (i * 7919) % 10_007}


def _run_worker(path: str, inbox: Any, outbox: Any) -> None:
    """In the child: load the reader's module from its file and call its worker."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    spec = importlib.util.spec_from_file_location("_reader_worker", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    getattr(module, WORKER_NAME)(inbox, outbox)


def _path_of(answer: Any) -> str | None:
    if isinstance(answer, types.ModuleType):
        return getattr(answer, "__file__", None)
    if isinstance(answer, (str, os.PathLike)):
        return os.fspath(answer)
    return None


def _exchange(path: str) -> dict[str, Any]:
    """Run the worker in a child; send every record then None; collect until None or a timeout."""
    from helpers.chapters.ch02_ipc import started
    from helpers.runners.cleanup import close_queue, release_semaphores

    ctx = mp_context(None)
    inbox, outbox = ctx.Queue(), ctx.Queue()
    replies, ended, exitcode = [], False, None
    try:
        with started(ctx.Process(target=_run_worker, args=(path, inbox, outbox)),
                     timeout=5) as child:
            for i in range(RECORDS):
                inbox.put(_record(i))
            inbox.put(None)
            deadline = time.perf_counter() + _WORKER_SECONDS
            while time.perf_counter() < deadline:
                try:
                    reply = outbox.get(timeout=0.2)
                except queue_module.Empty:
                    if child.exitcode is not None and outbox.empty():
                        break
                    continue
                if reply is None:
                    ended = True
                    break
                replies.append(reply)
            child.join(5)
            exitcode = child.exitcode
    finally:
        close_queue(inbox)
        close_queue(outbox)
        release_semaphores(inbox, outbox)
    return {"replies": replies, "ended": ended, "exitcode": exitcode}


@exercise("02.1", "A worker that answers through a Queue")
def _worker(answer: Any):
    path = _path_of(answer)
    if path is None or not path.endswith(".py"):
        yield Point(False, "answer should be the path of the module you wrote (like "
                           "'ch02_worker.py') or the imported module itself")
        return
    if not os.path.isfile(path):
        yield Point(False, f"there is no file {path!r}: run the %%writefile cell first")
        return
    source = open(path, encoding="utf-8").read()
    if f"def {WORKER_NAME}(" not in source:
        yield Point(False, f"the module should define a top-level function {WORKER_NAME}"
                           "(inbox, outbox)")
        return
    yield Point(True, f"{os.path.basename(path)} defines {WORKER_NAME}: a child can import it")
    got = _exchange(os.path.abspath(path))
    replies = got["replies"]
    if got["exitcode"] not in (0, None):
        yield Point(False, f"the worker process ended with exit code {got['exitcode']}: it "
                           "raised an exception (try it on a few records in the notebook)")
    well_formed = [r for r in replies if isinstance(r, dict) and {"id", "y"} <= set(r)]
    if len(well_formed) < len(replies):
        yield Point(False, "each reply should be a dict with the keys 'id' and 'y'")
    ids = [r["id"] for r in well_formed]
    unique = set(ids)
    lost = RECORDS - len(unique & set(range(RECORDS)))
    duplicated = len(ids) - len(unique)
    yield Point(lost == 0, "no record lost" if lost == 0 else
                f"{lost} of {RECORDS:,} records got no reply: does the worker answer every "
                "record before it stops?")
    yield Point(duplicated == 0, "no record answered twice" if duplicated == 0 else
                f"{duplicated} replies were duplicates: answer each record once")
    wrong = sum(1 for r in well_formed if r["id"] in range(RECORDS) and
                r["y"] != _record(r["id"])["x"] ** 2)
    yield Point(wrong == 0 and bool(well_formed), "every y is x squared" if wrong == 0 else
                f"{wrong} replies have a wrong 'y': it should be the record's 'x' squared")
    yield Point(got["ended"], "it ended its replies with None, so the parent knew when to stop"
                if got["ended"] else "no None came after the replies: put None on outbox when "
                                     "the sentinel arrives, so the reader knows the end")
    yield Point(got["exitcode"] == 0, "the child exited by itself after the sentinel"
                if got["exitcode"] == 0 else "the child did not exit by itself: return from the "
                                             "function once you got None")


@lru_cache(maxsize=1)
def _measured_rates() -> dict[str, float]:
    from helpers.chapters.ch02_ipc.throughput import transfer
    from helpers.course import QUICK

    size = _ARRAY_BYTES_QUICK if QUICK else _ARRAY_BYTES
    return {c: transfer(c, [(size, 1)]).rates[size] for c in CANDIDATES}


@exercise("02.2", "The fastest way to move a 100 MiB array")
def _fastest(answer: Any):
    if answer not in CANDIDATES:
        yield Point(False, f"answer should be one of {CANDIDATES}, got {answer!r}")
        return
    rates = _measured_rates()
    best = max(rates, key=rates.get)
    if answer == best:
        runner_up = max(r for c, r in rates.items() if c != best)
        yield Point(True, f"{answer}: measured here {rates[best] / runner_up:.1f}× faster than "
                          "the next channel — it copies the bytes once in and once out, with no "
                          "pickling and no trip through a kernel pipe")
    else:
        yield Point(False, f"on this machine another channel moved the array "
                           f"{rates[best] / rates[answer]:.1f}× faster than {answer}: count how "
                           "many times each channel copies the bytes, and through what")
