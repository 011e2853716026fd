"""Chapter 02 self-checks: a worker that answers through a Queue; a child that works on shared
memory in place. Both answers are modules the reader wrote with ``%%writefile`` (their path, or the
imported module); the check loads the module in a child process by path, so spawn and forkserver
find it too::

    02.1  kernel ──RECORDS records, then None──> inbox ──> square_records ──> outbox ──> kernel
          checks every reply, the closing None, and that the child ended by itself
    02.2  kernel: a SharedMemory block of NUMBERS float64 ──its name──> normalize(name, n, results)
          checks the block (each number divided by their sum, in place), the sum put on
          `results`, the child's exit code, and that the block is still there for its creator
"""

from __future__ import annotations

import importlib.util
import os
import queue as queue_module
import time
import types
from typing import Any

from helpers.course import mp_context
from helpers.runners.cleanup import ignore_sigint

from . import Point, exercise

__all__ = ["NORMALIZE_NAME", "NUMBERS", "RECORDS", "WORKER_NAME"]

RECORDS = 10_000  # records the check sends through the reader's worker
WORKER_NAME = "square_records"  # the function the reader's module must define
# The reader's worker gets this long to answer all records: a Queue moves ~20,000 small messages
# per second each way even on a busy 2-core machine, so a right answer needs about a second.
_WORKER_SECONDS = 10.0
# 02.2: the function the reader's module must define, and how many numbers the block holds (8 MB:
# enough that a copy would be a real cost, little enough to check in a blink).
NORMALIZE_NAME = "normalize"
NUMBERS = 1_000_000
_NORMALIZE_SECONDS = 20.0  # attaching and dividing 8 MB takes well under a second


def _record(i: int) -> dict[str, int]:
    """The i-th record the check sends."""
    return {"id": i, "x": (i * 7919) % 10_007}


def _load_and_call(path: str, function: str, args: tuple) -> None:
    """In the child: load the reader's module from its file and call `function`(*args)."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    spec = importlib.util.spec_from_file_location("_reader_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    getattr(module, function)(*args)


def _path_of(answer: Any) -> str | None:
    if isinstance(answer, types.ModuleType):
        return getattr(answer, "__file__", None)
    if isinstance(answer, (str, os.PathLike)):
        return os.fspath(answer)
    return None


def _module_path(answer: Any, function: str, example: str):
    """Yield a Point for what is wrong with the reader's module (or one saying it is fine);
    return its absolute path, or None when the check cannot go on. Use:
    ``path = yield from _module_path(...)``."""
    path = _path_of(answer)
    if path is None or not path.endswith(".py"):
        yield Point(False, f"answer should be the path of the module you wrote (like "
                           f"'{example}') or the imported module itself")
        return None
    if not os.path.isfile(path):
        yield Point(False, f"there is no file {path!r}: run the %%writefile cell first")
        return None
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    if f"def {function}(" not in source:
        yield Point(False, f"the module should define a top-level function {function}(...)")
        return None
    yield Point(True, f"{os.path.basename(path)} defines {function}: a child can import it")
    return os.path.abspath(path)


def _exchange(path: str) -> dict[str, Any]:
    """Run the worker in a child; send every record then None; collect until None or a timeout."""
    from helpers.chapters.ch02_ipc import started
    from helpers.runners.cleanup import close_queue, release_semaphores

    ctx = mp_context(None)
    inbox, outbox = ctx.Queue(), ctx.Queue()
    replies, ended, exitcode = [], False, None
    try:
        with started(ctx.Process(target=_load_and_call,
                                       args=(path, WORKER_NAME, (inbox, outbox))),
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
    path = yield from _module_path(answer, WORKER_NAME, "ch02_worker.py")
    if path is None:
        return
    got = _exchange(path)
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


def _still_linked(name: str) -> bool:
    """Whether a block called `name` can still be attached to (nobody has unlinked it)."""
    from multiprocessing import shared_memory

    try:
        probe = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return False
    probe.close()
    return True


def _normalize_in_child(path: str) -> dict[str, Any]:
    """Make a block of random positive numbers, run the reader's `normalize` on it in a child;
    report the block before and after, what came through `results`, and how the child ended."""
    from multiprocessing import shared_memory

    import numpy as np

    from helpers.chapters.ch02_ipc import started
    from helpers.runners.cleanup import close_queue, release_semaphores

    ctx = mp_context(None)
    results = ctx.Queue()
    block = shared_memory.SharedMemory(create=True, size=NUMBERS * 8)
    views: list[Any] = []  # the array on the block: emptied before the block is closed
    try:
        views.append(np.ndarray((NUMBERS,), np.float64, buffer=block.buf))
        views[0][:] = np.random.default_rng(2).uniform(1.0, 2.0, NUMBERS)
        before = views[0].copy()
        args = (path, NORMALIZE_NAME, (block.name, NUMBERS, results))
        with started(ctx.Process(target=_load_and_call, args=args),
                     timeout=_NORMALIZE_SECONDS) as child:
            try:
                sent = results.get(timeout=_NORMALIZE_SECONDS)
            except queue_module.Empty:
                sent = None
        return {"before": before, "after": views[0].copy(), "sent": sent,
                "exitcode": child.exitcode, "linked": _still_linked(block.name)}
    finally:
        views.clear()
        close_queue(results)
        release_semaphores(results)
        block.close()
        if _still_linked(block.name):  # else the child unlinked it (and told the tracker)
            block.unlink()


@exercise("02.2", "A child that works on shared memory in place")
def _normalize(answer: Any):
    import numpy as np

    path = yield from _module_path(answer, NORMALIZE_NAME, "ch02_normalize.py")
    if path is None:
        return
    got = _normalize_in_child(path)
    if got["exitcode"] != 0:
        yield Point(False, f"the child ended with exit code {got['exitcode']}: your function "
                           "raised, crashed (a negative code: did it use an array on the block "
                           "after close()?), or did not return in time")
    total = float(got["before"].sum())
    sent = got["sent"]
    sent_ok = isinstance(sent, (int, float)) and abs(float(sent) - total) <= 1e-9 * total
    yield Point(sent_ok, "the sum came through results" if sent_ok else
                "nothing came through results: put the sum on it" if sent is None else
                "results should get the sum of the numbers as they were, before dividing")
    in_place = bool(np.allclose(got["after"], got["before"] / total, rtol=1e-9, atol=0))
    unchanged = bool(np.array_equal(got["after"], got["before"]))
    yield Point(in_place, "the numbers in the block add up to 1 now: divided in place, where the "
                          "parent sees them" if in_place else
                "the block is unchanged: did you divide a copy? (x = x / s makes a new array "
                "in the child's own memory; x /= s writes into the block)" if unchanged else
                "the numbers in the block are not each divided by their sum")
    yield Point(got["linked"], "the block is still there for its creator to unlink"
                if got["linked"] else "the block was gone after your child ended: only its "
                                      "creator (the parent) unlinks; the child only close()s")
