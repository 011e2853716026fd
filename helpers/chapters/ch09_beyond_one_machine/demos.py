"""Chapter 09's measurements: what Dask's scheduler costs per task, a worker killed mid-run, and
where the data lives.

    measure_overhead(client, pool)   the same tasks, tiny to large, on Dask and on Pool.map,
                                     each task timing itself in its worker: per-task cost =
                                     (wall × workers − the tasks' own time) / tasks
    kill_a_worker(cluster, …)        as_completed on a command-line cluster; after k results,
                                     SIGKILL one worker; the scheduler recomputes its tasks
                                     (also those it had finished: their results died with it)
    compare_locality(client, …)      one large array: passed into every task vs scattered once
    plot_kill(report, ax)            the task stream, the moment of the kill marked
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers.course import check_float, check_int, check_timeout
from helpers.runners.dask import quiet_dask, task_stream_trace, worker_clocks
from helpers.timeline import Trace
from helpers.workloads import cpu_task, iterations_for

from .tasks import part_sum, timed_cpu_task

__all__ = [
    "OVERHEAD_TASK_MS",
    "KillReport",
    "LocalityReport",
    "OverheadRow",
    "compare_locality",
    "kill_a_worker",
    "measure_overhead",
    "plot_kill",
]

# The task sizes of the overhead table, in ms: from "nothing at all" to "clearly worth a network
# hop". Each row runs about `_ROW_SECONDS` of work spread over the workers.
OVERHEAD_TASK_MS = (0.01, 1.0, 10.0, 100.0)
_ROW_SECONDS = 0.25
# Tasks per row: at least enough to keep every worker busy a few times, at most enough to keep the
# tiny-task row (where Dask spends the most per task) within a second or two.
_MIN_TASKS, _MAX_TASKS = 8, 200
# Every wait of these demos is bounded: a loaded machine is slow, a stuck cluster is an error.
_TIMEOUT_SECONDS = 60.0


def _sizes(tasks: int, task_ms: float) -> list[int]:
    """`tasks` equal `cpu_task` sizes of about `task_ms` ms each (chapter 04's workload)."""
    check_int("tasks", tasks, 1, 100_000)
    check_float("task_ms", task_ms, 0.001, 2000.0)
    return [iterations_for(task_ms / 1e3)] * tasks


@dataclass
class OverheadRow:
    """One task size: the wall time of each way of running the same tasks, the time the tasks
    themselves computed in that run (each timed by its worker), and the cost per task."""

    task_ms: float
    tasks: int
    compute_ms: float  # one task's own time, the mean of every run of the row
    seconds: dict[str, float] = field(default_factory=dict)
    workers: int = 2
    compute_seconds: dict[str, float] = field(default_factory=dict)  # the tasks' own, summed

    def per_task_ms(self, how: str) -> float:
        """Worker time spent per task on anything but the task:
        (wall × workers − the tasks' own time in that run) / tasks.

        Never clamped: each worker computes one task at a time inside the wall-clock window,
        so the difference is positive unless the pool had more workers than `workers` said.
        """
        busy = self.seconds[how] * self.workers - self.compute_seconds[how]
        return busy * 1e3 / self.tasks

    def __str__(self) -> str:
        cells = "  ".join(f"{how} {self.seconds[how]:.3f} s ({self.per_task_ms(how):.3f} ms/task)"
                          for how in self.seconds)
        return f"{self.tasks:>4} tasks of {self.task_ms:>6g} ms: {cells}"


def measure_overhead(client: Any, pool: Any, *, workers: int,
                     sizes_ms: tuple[float, ...] = OVERHEAD_TASK_MS,
                     row_seconds: float = _ROW_SECONDS) -> list[OverheadRow]:
    """The same `cpu_task`s on `client` (a future each) and on `pool` (``Pool.map`` with its own
    chunksize, and with ``chunksize=1``), one row per task size; client and pool already up.

    Each task times its own computation in the worker (`timed_cpu_task`): the cost per task is
    the wall time the workers had, less what the tasks computed, in the same run.
    """
    from distributed import wait

    rows = []
    for task_ms, items in _overhead_items(workers, sizes_ms, row_seconds):  # checked, sized
        row = OverheadRow(task_ms, len(items), 0.0, workers=workers)
        with quiet_dask():
            started = time.perf_counter()
            futures = client.map(timed_cpu_task, items, pure=False)  # one task, one future each
            wait(futures, timeout=_TIMEOUT_SECONDS)
            own = client.gather(futures, errors="raise")
            _note(row, "Dask futures", time.perf_counter() - started, own)
        started = time.perf_counter()
        own = pool.map_async(timed_cpu_task, items).get(_TIMEOUT_SECONDS)  # chunks of several
        _note(row, "Pool.map", time.perf_counter() - started, own)
        started = time.perf_counter()
        own = pool.map_async(timed_cpu_task, items, chunksize=1).get(_TIMEOUT_SECONDS)  # one each
        _note(row, "Pool.map chunksize=1", time.perf_counter() - started, own)
        row.compute_ms = sum(row.compute_seconds.values()) * 1e3 / (len(row.seconds) * row.tasks)
        rows.append(row)
    return rows


def _note(row: OverheadRow, how: str, seconds: float, own: list[float]) -> None:
    """File one way's wall time and its tasks' own computing time under `how`."""
    row.seconds[how] = seconds
    row.compute_seconds[how] = sum(own)


def _overhead_items(workers: int, sizes_ms: Sequence[float],
                    row_seconds: float) -> list[tuple[float, list[int]]]:
    """For each task size, its `cpu_task` sizes: about `row_seconds` of work over the workers."""
    check_int("workers", workers, 1, 64)
    check_float("row_seconds", row_seconds, 0.01, 10.0)
    if isinstance(sizes_ms, (str, bytes)) or not isinstance(sizes_ms, Sequence) or not sizes_ms:
        raise ValueError(f"sizes_ms must be a non-empty list of task sizes in ms, got {sizes_ms!r}")
    for task_ms in sizes_ms:
        check_float("each of sizes_ms", task_ms, 0.001, 2000.0)
    return [(task_ms, _sizes(int(min(_MAX_TASKS, max(_MIN_TASKS, row_seconds * 1e3 * workers /
                                                       max(task_ms, 1.0)))), task_ms))
            for task_ms in sizes_ms]


@dataclass
class KillReport:
    """What happened when a worker was killed mid-run."""

    killed: str
    after_results: int
    correct: bool
    seconds: float
    kill_ns: int
    trace: Trace
    runs_per_task: Counter
    lanes_of_killed: list[str]

    @property
    def recomputed(self) -> int:
        """Tasks that ran more than once: finished on the killed worker (their results were only
        there), or running on it when it died (those never reach the task stream)."""
        return sum(1 for runs in self.runs_per_task.values() if runs > 1)

    def __str__(self) -> str:
        return (f"killed {self.killed} after {self.after_results} results; all "
                f"{len(self.runs_per_task)} results {'correct' if self.correct else 'WRONG'} "
                f"after {self.seconds:.2f} s; {self.recomputed} "
                f"{'task' if self.recomputed == 1 else 'tasks'} ran twice (the killed worker had "
                f"computed {'it; its result' if self.recomputed == 1 else 'them; their results'} "
                f"died with it)")


def _worker_names(client: Any) -> dict[str, str]:
    """Each worker's name by its address, as the scheduler knows them now."""
    return {a: info.get("name", a) for a, info in client.scheduler_info()["workers"].items()}


def kill_a_worker(cluster: Any, tasks: int = 16, task_ms: float = 100.0, *, after: int = 4,
                  victim: str | None = None, timeout: float = _TIMEOUT_SECONDS) -> KillReport:
    """Submit `tasks`, kill a worker once `after` results are in, gather all: still right?

    The worker killed is `victim` (a name such as ``"worker-a"``), or by default the one that
    holds the latest result, so at least that result is lost and must be computed again.
    """
    check_int("tasks", tasks, 2, 1000)
    check_float("task_ms", task_ms, 0.001, 2000.0)
    check_int("after", after, 1, tasks - 1)
    timeout = check_timeout("timeout", timeout)
    from distributed import as_completed, get_task_stream

    client = cluster.client
    items = _sizes(tasks, task_ms)
    expected = cpu_task(items[0])
    names = _worker_names(client)
    with quiet_dask():
        clocks = worker_clocks(client)
        with get_task_stream(client) as stream:
            started = time.perf_counter()
            futures = client.map(cpu_task, items, pure=False)
            kill_ns = 0
            for done, future in enumerate(as_completed(futures, timeout=timeout), 1):
                if done == after:
                    if victim is None:
                        holder = client.who_has([future])[future.key][0]
                        if holder not in names:  # a worker that (re)joined after the look-up
                            names.update(_worker_names(client))
                        victim = names.get(holder, holder)
                    cluster.kill_worker(victim)  # returns once the process is gone
                    kill_ns = time.perf_counter_ns()
            values = client.gather(futures)
            seconds = time.perf_counter() - started
    labels = {f.key: f"task {i}" for i, f in enumerate(futures)}
    trace = task_stream_trace(stream.data, clocks, labels=labels, names=names)
    runs = Counter(e.label for e in trace.events if e.kind == "run")
    killed_lanes = [lane for lane in trace.lanes() if lane.startswith(victim)]
    return KillReport(victim, after, values == [expected] * tasks, seconds, kill_ns, trace, runs,
                      killed_lanes)


def plot_kill(report: KillReport, ax) -> list:
    """The task stream of `kill_a_worker`, with a line where the worker was killed."""
    from helpers.timeline import plot_timeline

    redone = report.recomputed
    layout = plot_timeline(report.trace, ax, title=f"{report.killed} killed after "
                           f"{report.after_results} results; {redone} "
                           f"{'task' if redone == 1 else 'tasks'} recomputed")
    x = layout.x(report.kill_ns)
    artists = list(layout)
    again = {label for label, runs in report.runs_per_task.items() if runs > 1}
    redone = [e for e in report.trace.events if e.label in again
              and not e.lane.startswith(report.killed)]
    if redone:
        from matplotlib.patches import Patch

        artists += layout.mark(redone, facecolors="none", edgecolors="#D55E00", hatch="//",
                               linewidth=1.5)
        handles, names = ax.get_legend_handles_labels()
        handles.append(Patch(facecolor="none", edgecolor="#D55E00", hatch="//"))
        names.append("recomputed")
        artists.append(ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                                 fontsize=11, frameon=False))
    artists.append(ax.axvline(x, color="#D55E00", linewidth=2))
    # At the top of the axes, on a white box: readable over a bar of any lane.
    artists.append(ax.annotate(f"SIGKILL {report.killed}", (x, 1.0),
                               xycoords=ax.get_xaxis_transform(), xytext=(4, -3),
                               textcoords="offset points", color="#D55E00", fontsize=11,
                               va="top", bbox={"facecolor": "white", "edgecolor": "none",
                                               "alpha": 0.9, "pad": 1.5}))
    return artists


@dataclass
class LocalityReport:
    """The same tasks on one large array: the array passed into each task, or scattered once."""

    megabytes: float
    tasks: int
    ship_seconds: float
    scatter_seconds: float
    correct: bool
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.tasks} tasks on a {self.megabytes:.0f} MB array: passed into every task "
                f"{self.ship_seconds:.2f} s (about {self.tasks * self.megabytes:.0f} MB sent), "
                f"scattered once {self.scatter_seconds:.2f} s (about {self.megabytes:.0f} MB "
                f"sent, plus a copy per other worker that needs it): "
                f"{self.ship_seconds / self.scatter_seconds:.1f}× "
                f"{'faster' if self.scatter_seconds < self.ship_seconds else 'slower'}; "
                f"results {'equal' if self.correct else 'DIFFERENT'}")


def compare_locality(client: Any, megabytes: float = 40.0, tasks: int = 8, *,
                     timeout: float = _TIMEOUT_SECONDS) -> LocalityReport:
    """Sum slices of one array in `tasks` tasks: shipping it with each task vs `scatter`."""
    check_float("megabytes", megabytes, 1.0, 512.0)
    check_int("tasks", tasks, 1, 64)
    timeout = check_timeout("timeout", timeout)
    import numpy as np
    from distributed import wait

    array = np.random.default_rng(9).random(int(megabytes * 2**20 / 8))
    expected = [part_sum(array, i, tasks) for i in range(tasks)]
    with quiet_dask(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        shipped = [client.submit(part_sum, array, i, tasks, pure=False) for i in range(tasks)]
        wait(shipped, timeout=timeout)
        ship_values = client.gather(shipped)
        ship_seconds = time.perf_counter() - started
        del shipped
        started = time.perf_counter()
        [remote] = client.scatter([array])
        scattered = [client.submit(part_sum, remote, i, tasks, pure=False) for i in range(tasks)]
        wait(scattered, timeout=timeout)
        scatter_values = client.gather(scattered)
        scatter_seconds = time.perf_counter() - started
        del scattered, remote
    said = sorted({str(w.message).strip().splitlines()[0][:160] for w in caught})
    correct = np.allclose(ship_values, expected) and np.allclose(scatter_values, expected)
    return LocalityReport(megabytes, tasks, ship_seconds, scatter_seconds, bool(correct), said)
