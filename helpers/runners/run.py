"""The one result every runner returns: `Run`, and `Failure`, a task's exception sent back as data.

Whatever ran the tasks — the kernel alone, threads, one process each, a pool, an isolated patched
child, gevent, asyncio, Dask — the chapter gets the same shape back::

    runner(fn, tasks, ...) ──> Run(model, label, values, failures, seconds, trace, ...)
                                   │          │        │         │        └─> plot_timeline
                                   │          │        │         └─> speed-ups (compare)
                                   │          │        └─> {task index: Failure}, never a None
                                   │          └─> results in task order (None where one failed)
                                   └─> "serial", "threads", "processes", "pool", "patched", …

so one `compare`, one comparison plot and one set of tests serve every model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from helpers.timeline import Trace

__all__ = ["Failure", "Run"]


@dataclass(frozen=True)
class Failure:
    """An exception raised in a task (or a worker that died), sent back as data.

    The worker never prints the traceback: it travels here as text, and the chapter shows it.
    """

    type_name: str
    message: str
    traceback_text: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException, traceback_text: str = "") -> Failure:
        return cls(type(exc).__name__, str(exc), traceback_text)

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


@dataclass
class Run:
    """What one run of tasks did, whatever ran them.

    ``values`` are in task order; a task that failed has ``None`` there and its `Failure` in
    ``failures`` under its index. ``seconds`` is the wall time of the tasks themselves (a pool's
    start-up, when measured apart, is in ``details["pool_start_seconds"]``). ``details`` holds
    what only some runners know: ``pids``, ``exitcodes``, ``chunksize``, ``completion_order``…
    """

    model: str
    label: str
    values: list[Any]
    failures: dict[int, Failure]
    seconds: float
    trace: Trace
    workers: int | None = None
    start_method: str | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> Any:
        """The one value of a one-task run (a patched child, a gevent demo): ``values[0]``."""
        if len(self.values) != 1:
            raise AttributeError(f"value is for one-task runs; this one has {len(self.values)} "
                                 f"tasks: use .values")
        return self.values[0]

    @property
    def ok(self) -> bool:
        """True when every task returned a value."""
        return not self.failures

    @property
    def busy_seconds(self) -> float:
        """Work done (``run`` spans), summed over lanes: what one worker alone would need."""
        return sum(e.duration_ns for e in self.trace.select(kind="run")) / 1e9

    def parallelism(self) -> float:
        """Busy time over wall time: how many workers were computing, on average."""
        return self.busy_seconds / self.seconds if self.seconds > 0 else 0.0

    def tasks_per_lane(self) -> Counter:
        """How many ``run`` spans each lane recorded (for a pool: tasks per worker)."""
        return Counter(e.lane for e in self.trace.select(kind="run"))

    def raise_failures(self) -> None:
        """Raise `RuntimeError` listing the failed tasks, if any (for code needing every value)."""
        if self.failures:
            listed = "; ".join(f"task {i}: {f}" for i, f in sorted(self.failures.items())[:5])
            raise RuntimeError(f"{len(self.failures)} of {len(self.values)} tasks failed in "
                               f"{self.label}: {listed}")

    def summary(self) -> str:
        text = (f"{self.label}: {len(self.values)} tasks in {self.seconds:.2f} s, "
                f"on average {self.parallelism():.2f} lanes computing")
        if self.failures:
            text += f"; {len(self.failures)} failed"
        return text
