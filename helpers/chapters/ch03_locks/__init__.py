"""Chapter 03 — locks: processes that share something must take turns, and here is what it costs.

Data flow (every demo)::

    notebook cell                         Workers (workers.py)                 worker processes
    -------------                         --------------------                 ----------------
    with Workers(START) as w:
        lock = w.ctx.Lock()        ──>    ProcessGroup(START).ctx
        w.add(fn, lock, …) × n     ──>    n × ProcessGroup.start(…)  ──start──> barrier.wait()
        w.run() -> Run                                                         fn(rec, lock, …)
                                          ProcessGroup.wait(timeout) <─once─── (value, spans),
                                                                               one pipe each
    w.trace ──> plot_story(trace, ax)      on exit: stop, close, unlink semaphores

Modules:

Notebooks: ``03a_locks`` (printing, counters, Lock on the timeline) and ``03b_primitives`` (the
other primitives, failures). Each shows the source of what it runs (``show_source``) except the
names in `__plumbing__`.

- `workers`: `Workers`, the launcher every demo uses; `spin`, the work a worker does; `checked`,
  the course's own range check of a worker's numbers, in the kernel before anything starts.
- `printing`: the article's example — garbled lines without a lock, whole lines with one.
- `counters`: lost updates on a shared `Value`, counted, and what each locking strategy costs.
- `primitives`: the worker functions of the Lock, RLock, Semaphore, Event, Condition and Barrier
  demos, and `most_at_once` / `waits` / `handoffs`, the questions a timeline answers.
- `failures`: a deadlock detected by ``acquire(timeout=…)`` and fixed by lock ordering; a process
  terminated while it holds a lock; one terminated while it sends on a Queue.
- `views`: `plot_story`, `plot_count` and `make_panel`.
"""

from helpers.course import preload_in_forkserver

from .counters import (
    MAX_INCREMENTS,
    STRATEGIES,
    CountResult,
    add_batched,
    add_locked,
    add_plain,
    compare_strategies,
    count_demo,
)
from .failures import (
    HOW,
    LockStory,
    deadlock_demo,
    hold,
    killed_holder,
    killed_writer,
    receive,
    send_big,
    send_small,
    take_two,
    try_lock,
)
from .primitives import (
    consume,
    handoffs,
    in_phases,
    limited,
    most_at_once,
    nested,
    prepare_then_signal,
    produce,
    take_turns,
    wait_for_signal,
    waits,
)
from .printing import PrintResult, count_lines, greet, print_demo, print_into
from .views import PANEL_INCREMENTS, make_panel, plot_count, plot_story
from .workers import MAX_WORKERS, WAIT_SECONDS, Workers, checked, spin

# What the notebooks use without showing its source (tests/test_code_on_page.py): none of it is
# a lesson about locks. Each worker function, each demo that creates a primitive and the demos of
# failures are shown on the page.
__plumbing__ = (
    # The launcher: ctx.Process(target, args) per worker, started together at a Barrier, joined
    # with a timeout, each one's value and recording collected from a queue, everything stopped
    # and unlinked on the way out. 03a writes the same start/join/terminate out by hand first.
    "Workers",
    # Questions put to a finished Trace (the most spans open at once; who waited how long for
    # whom): arithmetic over recorded times, no multiprocessing in them.
    "most_at_once",
    "waits",
)

# Every worker of this chapter lives in these modules: the fork server loads them once.
preload_in_forkserver(*(f"{__name__}.{m}" for m in ("workers", "printing", "counters",
                                                     "primitives", "failures")))

__all__ = [
    "HOW",
    "MAX_INCREMENTS",
    "MAX_WORKERS",
    "PANEL_INCREMENTS",
    "STRATEGIES",
    "WAIT_SECONDS",
    "CountResult",
    "LockStory",
    "PrintResult",
    "Workers",
    "add_batched",
    "add_locked",
    "add_plain",
    "checked",
    "compare_strategies",
    "consume",
    "count_demo",
    "count_lines",
    "deadlock_demo",
    "greet",
    "handoffs",
    "hold",
    "in_phases",
    "killed_holder",
    "killed_writer",
    "limited",
    "make_panel",
    "most_at_once",
    "nested",
    "plot_count",
    "plot_story",
    "prepare_then_signal",
    "print_demo",
    "print_into",
    "produce",
    "receive",
    "send_big",
    "send_small",
    "spin",
    "take_turns",
    "take_two",
    "try_lock",
    "wait_for_signal",
    "waits",
]
