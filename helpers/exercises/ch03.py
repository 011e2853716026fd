"""Checks for chapter 03 (locks): the reader writes worker code into a module, the check runs it.

- 03.1 fixes a lost-update counter: the answer is the path of a module (written with
  ``%%writefile``) that defines ``add_up(counter, increments)``. The check runs it in
  `COUNTER_PROCESSES` processes on one shared ``Value("q", 0)``, counts what was lost, and times
  it against the unlocked loop measured in the same check;
- 03.2 takes two locks without deadlock: the answer is the path of a module that defines
  ``with_both(locks, names, critical)``, without timeouts. The check runs two processes that
  want the same two locks named in opposite orders, many times, through stand-ins for the locks
  that note in which order each process took them and whether it asked for a timeout or a
  non-blocking acquire. It says whether they got stuck, whether they took the locks in opposite
  orders (a deadlock waiting for other timing, even when none happened), whether the module
  gives up on a lock instead (its code and the run), whether ``critical()`` ever ran with
  someone else inside, and whether each call did run it.

The reader's modules go to ``work_folder("ch03")`` (``notebooks/work/ch03``), where the notebooks'
``%%writefile`` cells put them.

Data flow of both::

    kernel: check("03.k", path) ──> Workers: n × _run_counter / _run_both(rec, path, …)
            (each child loads the reader's module from `path` itself: works under every start
            method, since nothing of the reader's is pickled) ──> counts, times ──> Points
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import time
import types
from pathlib import Path

from . import Point, exercise

__all__ = ["BOTH_ROUNDS", "COUNTER_INCREMENTS", "COUNTER_PROCESSES", "SLOWDOWN_LIMIT"]

# 03.1: processes and increments per process: as in the chapter's demo, enough that an unlocked
# counter loses a good part of its increments on two cores.
COUNTER_PROCESSES, COUNTER_INCREMENTS = 2, 100_000
# 03.1: the reader's counter may take at most this many times as long per increment as the
# unlocked loop. Counting locally and adding once takes less than the unlocked loop; a lock
# round trip per increment takes ten times as long or more, contended.
SLOWDOWN_LIMIT = 3.0
# 03.1 and 03.2: a measurement is repeated up to this many times and the best counts, so one
# hiccup of a shared machine does not fail a right answer.
_ATTEMPTS = 3
# 03.2: rounds per process. Each takes both locks once; with opposite orders and no care, two
# processes deadlock within a few rounds.
BOTH_ROUNDS = 30
# 03.2: the reader's workers must be done within this: 30 rounds take well under a second; a
# deadlock never ends, and the check stops the workers after it.
_BOTH_TIMEOUT_SECONDS = 4.0
_CRITICAL_SECONDS = 0.002  # inside the critical section: long enough for the other to arrive


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(f"reader_{os.getpid()}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name, None)


def _module_points(answer, name: str, params: int):
    """(function or None, points): the answer must be a readable module defining `name`."""
    if isinstance(answer, types.ModuleType):
        answer = getattr(answer, "__file__", None) or ""
    if not isinstance(answer, (str, os.PathLike)) or not os.fspath(answer).endswith(".py"):
        return None, [Point(False, "answer should be the path of your module: the "
                                   "file name after %%writefile")]
    path = Path(answer)
    if not path.is_file():
        return None, [Point(False, f"there is no file {str(path)!r}: run the %%writefile cell")]
    try:
        fn = _load(str(path), name)
    except Exception as exc:
        return None, [Point(False, f"{path.name} does not import: {type(exc).__name__}: {exc}")]
    if fn is None:
        return None, [Point(False, f"{path.name} defines no function {name}()")]
    if not callable(fn) or len(inspect.signature(fn).parameters) != params:
        return None, [Point(False, f"{name} should be a function of {params} parameters")]
    return fn, [Point(True, f"{path.name} defines {name}()")]


def _path(answer) -> str:
    return answer.__file__ if isinstance(answer, types.ModuleType) else os.fspath(answer)


# -- 03.1 ------------------------------------------------------------------------------------
class _WatchedLock:
    """The Value's own lock, counting how deeply this process holds it right now."""

    def __init__(self, lock):
        self._lock, self.depth = lock, 0

    def acquire(self, *args, **kwargs):
        got = self._lock.acquire(*args, **kwargs)
        self.depth += bool(got)
        return got

    def release(self):
        self._lock.release()
        self.depth -= 1

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


class _Watched:
    """The shared counter as the reader's add_up sees it: the Value itself, except that each
    write of ``.value`` made without holding the Value's lock is counted. A single unlocked add
    rarely loses anything in a test, yet it races: this is how the check sees it anyway."""

    def __init__(self, counter):
        self._counter = counter
        self._lock = _WatchedLock(counter.get_lock())
        self.unlocked_writes = 0

    def get_lock(self):
        return self._lock

    def acquire(self, *args, **kwargs):
        return self._lock.acquire(*args, **kwargs)

    def release(self):
        self._lock.release()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc_info):
        self._lock.__exit__(*exc_info)

    @property
    def value(self):
        return self._counter.value

    @value.setter
    def value(self, new):
        if self._lock.depth <= 0:
            self.unlocked_writes += 1
        self._counter.value = new


def _run_counter(rec, counter, increments, path):
    """In a worker: run the reader's add_up (loaded from `path`) on the watched counter, or with
    path None the unlocked loop of the chapter; return (ns per increment, unlocked writes)."""
    if path is None:
        from helpers.chapters.ch03_locks import add_plain as add_up
    else:
        add_up = _load(path, "add_up")
        counter = _Watched(counter)
    start = time.perf_counter_ns()
    add_up(counter, increments)
    ns = (time.perf_counter_ns() - start) / increments
    return ns, getattr(counter, "unlocked_writes", 0)


def _count(path):
    """(final count, mean ns per increment, unlocked writes) of COUNTER_PROCESSES workers."""
    from helpers.chapters.ch03_locks import Workers

    with Workers(None) as w:
        counter = w.ctx.Value("q", 0, lock=path is not None)
        for _ in range(COUNTER_PROCESSES):
            w.add(_run_counter, counter, COUNTER_INCREMENTS, path)
        run = w.run(60, keep_failures=True)
        if run.failures:
            raise RuntimeError(str(next(iter(run.failures.values()))))
        values = run.values
        return (counter.value, sum(ns for ns, _ in values) / COUNTER_PROCESSES,
                sum(unlocked for _, unlocked in values))


@exercise("03.1", "Fix the lost-update counter")
def _counter(answer):
    fn, points = _module_points(answer, "add_up", 2)
    yield from points
    if fn is None:
        return
    path = str(Path(_path(answer)).resolve())
    expected = COUNTER_PROCESSES * COUNTER_INCREMENTS
    best_ratio, finals, baseline_lost, unlocked = float("inf"), [], 0, 0
    for _ in range(_ATTEMPTS):
        final, ns, unlocked_writes = _count(path)
        base_final, base_ns, _ = _count(None)
        finals.append(final)
        unlocked = max(unlocked, unlocked_writes)
        baseline_lost = max(baseline_lost, expected - base_final)
        best_ratio = min(best_ratio, ns / base_ns)
        if final != expected or best_ratio <= SLOWDOWN_LIMIT:
            break
    wrong = [f for f in finals if f != expected]
    if not wrong and unlocked:
        yield Point(False, f"all {expected:,} counted this time, but counter.value was written "
                           f"{unlocked:,}× by a process that did not hold the Value's lock: "
                           "with other timing another process writes in between. What must "
                           "every write hold?")
        return
    if not wrong:
        note = "" if baseline_lost else (" (this machine lost nothing unlocked either, this "
                                         "time: run the check again to be sure)")
        yield Point(True, f"{COUNTER_PROCESSES} processes × {COUNTER_INCREMENTS:,}: "
                          f"all {expected:,} counted{note}")
    elif wrong[0] < expected:
        yield Point(False, f"{expected - wrong[0]:,} of {expected:,} increments were lost: "
                           "between reading counter.value and writing it back, another "
                           "process wrote. Which lock does a Value carry, and what must it "
                           "cover?")
    else:
        yield Point(False, f"counted {wrong[0]:,}, more than the {expected:,} added: "
                           "each process must add exactly `increments`")
    if wrong:
        return
    if best_ratio <= SLOWDOWN_LIMIT:
        yield Point(True, f"fast: {best_ratio:.2f}× the time per increment of the unlocked "
                          f"loop (limit {SLOWDOWN_LIMIT:g}×)")
    else:
        yield Point(False, f"right, but {best_ratio:.0f}× slower per increment than the "
                           f"unlocked loop (limit {SLOWDOWN_LIMIT:g}×): how often does your "
                           "code take the lock, and does it have to?")


# -- 03.2 ------------------------------------------------------------------------------------
class _Critical:
    """The critical section the reader's code must run holding both locks. It notes when a lock
    is free (nobody holds it) and when another worker is inside too; picklable, it counts its
    calls in this process."""

    def __init__(self, locks, inside, overlaps, unheld):
        self.locks, self.inside, self.overlaps, self.unheld = locks, inside, overlaps, unheld
        self.calls = 0

    def __call__(self):
        self.calls += 1
        for lock in self.locks.values():
            if lock.acquire(block=False):  # it was free: the caller does not hold it
                lock.release()
                self.unheld.value += 1
        self.inside.value += 1
        if self.inside.value != 1:
            self.overlaps.value += 1
        time.sleep(_CRITICAL_SECONDS)
        self.inside.value -= 1


class _NotedLock:
    """One of the two locks as the reader's with_both sees it: the lock itself, noting in this
    process which locks were already held when it was taken (so the check sees the order each
    worker takes them in), and every acquire that may give up (a timeout, or not blocking)."""

    def __init__(self, name, lock, held, notes):
        self._name, self._lock, self._held, self._notes = name, lock, held, notes

    def acquire(self, *args, **kwargs):
        block = args[0] if args else kwargs.get("block", True)
        timeout = args[1] if len(args) > 1 else kwargs.get("timeout")
        may_give_up = not block or timeout is not None  # acquire() waits as long as it takes
        got = self._lock.acquire(*args, **kwargs)
        if may_give_up:
            self._notes["may give up"] += 1
            self._notes["gave up"] += not got
        if got:
            self._notes["orders"].update((first, self._name) for first in self._held)
            self._held.append(self._name)
        return got

    def release(self):
        self._lock.release()
        if self._name in self._held:
            self._held.remove(self._name)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()

    def __getattr__(self, name):
        return getattr(self._lock, name)


def _run_both(rec, path, locks, names, counts, rounds):
    """In a worker: call the reader's with_both `rounds` times on noted stand-ins of `locks`;
    return (calls of critical(), its notes: orders taken, acquires that may give up, gave up)."""
    with_both = _load(path, "with_both")
    critical = _Critical(locks, *counts)
    held: list[str] = []
    notes = {"orders": set(), "may give up": 0, "gave up": 0}
    noted = {name: _NotedLock(name, lock, held, notes) for name, lock in locks.items()}
    for _ in range(rounds):
        with_both(noted, names, critical)
    return critical.calls, notes


def _giving_up_in_code(path) -> list[int]:
    """Line numbers where the module asks a lock to give up: an acquire() whose first argument
    (block) is not True or whose second (timeout) is not None, or a call given a timeout or a
    block/blocking flag other than None and True."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []

    def is_constant(node, value) -> bool:
        return isinstance(node, ast.Constant) and node.value is value

    lines = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr == "acquire" and (
                (node.args and not is_constant(node.args[0], True))
                or (len(node.args) > 1 and not is_constant(node.args[1], None))):
            lines.add(node.lineno)
        for keyword in node.keywords:
            if ((keyword.arg == "timeout" and not is_constant(keyword.value, None))
                    or (keyword.arg in ("block", "blocking")
                        and not is_constant(keyword.value, True))):
                lines.add(node.lineno)
    return sorted(lines)


def _both_once(path):
    """(stuck, overlaps, unheld, calls per worker, merged notes) of two workers wanting A, B and
    B, A."""
    from helpers.chapters.ch03_locks import Workers

    with Workers(None) as w:
        locks = {"A": w.ctx.Lock(), "B": w.ctx.Lock()}
        # inside (how many are in critical() now), overlaps, unheld: see _Critical
        counts = [w.ctx.Value("i", 0, lock=False) for _ in range(3)]
        for names in (("A", "B"), ("B", "A")):
            w.add(_run_both, path, locks, names, counts, BOTH_ROUNDS)
        try:
            run = w.run(_BOTH_TIMEOUT_SECONDS, keep_failures=True)
        except TimeoutError:
            return True, 0, 0, [], None
        if run.failures:
            raise RuntimeError(str(next(iter(run.failures.values()))))
        notes = {"orders": set(), "may give up": 0, "gave up": 0}
        for _, worker_notes in run.values:
            notes["orders"] |= worker_notes["orders"]
            notes["may give up"] += worker_notes["may give up"]
            notes["gave up"] += worker_notes["gave up"]
        return (False, counts[1].value, counts[2].value, [calls for calls, _ in w.results()],
                notes)


@exercise("03.2", "Take two locks without a deadlock")
def _both(answer):
    fn, points = _module_points(answer, "with_both", 3)
    yield from points
    if fn is None:
        return
    path = str(Path(_path(answer)).resolve())
    in_code = _giving_up_in_code(path)
    stuck, overlaps, unheld, calls, notes = _both_once(path)
    if stuck:
        yield Point(False, f"the two workers got stuck (stopped after "
                           f"{_BOTH_TIMEOUT_SECONDS:g} s): each held one lock and waited for "
                           "the other's. Does the order you take them in depend on `names`?")
    else:
        yield Point(True, f"two workers wanting ('A', 'B') and ('B', 'A'), {BOTH_ROUNDS} rounds "
                          "each: never stuck")
    if in_code or (notes and notes["may give up"]):
        where = f" (line {', '.join(map(str, in_code))} of your module)" if in_code else ""
        run = (f"; in this run {notes['may give up']} acquires could give up and "
               f"{notes['gave up']} did" if notes and notes["may give up"] else "")
        yield Point(False, f"with_both asks a lock to give up, with a timeout or without "
                           f"blocking{where}{run}. That detects a deadlock and backs off; the "
                           "task is to make one impossible, with plain acquires that may wait "
                           "as long as it takes.")
    if stuck:
        return
    if ("A", "B") in notes["orders"] and ("B", "A") in notes["orders"]:
        yield Point(False, "no deadlock this time, but one worker took A while it held B and "
                           "another took B while it held A: with other timing each holds what "
                           "the other waits for")
    if unheld or overlaps:
        yield Point(False, f"critical() found a lock that nobody held ({unheld}×) or another "
                           f"worker inside ({overlaps}×): it must run while this worker holds "
                           "both locks")
    else:
        yield Point(True, "critical() always ran holding both locks, alone")
    if calls == [BOTH_ROUNDS, BOTH_ROUNDS]:
        yield Point(True, "each call of with_both ran critical() once")
    else:
        yield Point(False, f"critical() ran {calls} times in the two workers; each call of "
                           "with_both should run it exactly once")
