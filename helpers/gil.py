"""The GIL, shown: the same work run serially, in threads and in processes, on one timeline.

Chapter 00's demo. Each worker records its own spans while it works, and the record tells the
truth about the GIL because CPU work is recorded in short chunks, each split by the thread's own
CPU clock into the part that ran and the part that waited::

    chunk of work (wall)   |<------------- 5.2 ms ------------->|
    thread CPU time used                     |<---- 0.2 ms ---->|
    recorded as            [ wait: GIL or core ][     run      ]

Two threads of CPU-bound Python take turns holding the GIL (every ``sys.getswitchinterval()``,
5 ms by default), so their lanes alternate; two processes each have a GIL of their own and run
at once.

    kernel ──start──> process 0 ──┐ records locally, then sends its Recording once
           ──start──> process 1 ──┤ through a queue (no per-event traffic)
           <── Recording, Recording ┘  ──> Trace ──> plot_timeline
"""

from __future__ import annotations

import queue as _queue
import threading
import time
import traceback
from dataclasses import dataclass, field

from .course import QUICK, available_start_methods, check_choice, check_float, check_int, mp_context
from .timeline import Recorder, Recording, Trace, plot_timeline
from .workloads import cpu_task, io_task, iterations_for

__all__ = ["MODES", "Comparison", "Run", "compare", "panel", "plot_comparison", "run_work"]

MODES = ("serial", "threads", "processes")
# One chunk is about 0.2 ms of work: short against the GIL's 5 ms switch interval, so a wait is
# placed within 0.2 ms of where it happened, and long against the ~1 µs it costs to time a chunk.
_CHUNK_SECONDS = 0.0002
# A chunk whose wall time exceeds its CPU time by more than this waited (for the GIL or a core);
# below it, the difference is timer noise.
_WAIT_THRESHOLD_NS = 50_000
# The longest the demo waits for its workers before it gives up and stops them.
_TIMEOUT_SECONDS = 60.0
MAX_WORKERS = 8  # a demo on a 2-core machine gains nothing from more; it only gets slower


def record_cpu_work(
    iterations: int, recorder: Recorder, label: str, waiting: str, chunk: int | None = None
) -> int:
    """Do `iterations` of `cpu_task` in chunks, recording run spans and `waiting` spans.

    `chunk` is the iterations per timed chunk; a child process gets it from its parent, so it
    does not spend its first 60 ms calibrating.
    """
    chunk = max(1, chunk or iterations_for(_CHUNK_SECONDS))
    done, checksum = 0, 0
    # The clocks are read once per chunk and each interval runs from the previous reading, so no
    # time escapes: a thread can lose the GIL between two chunks (at the loop's backward jump) too.
    wall_mark, cpu_mark = time.perf_counter_ns(), time.thread_time_ns()
    run_start, run_end = wall_mark, wall_mark
    while done < iterations:
        size = min(chunk, iterations - done)
        checksum += cpu_task(size)
        wall_now, cpu_now = time.perf_counter_ns(), time.thread_time_ns()
        waited = (wall_now - wall_mark) - (cpu_now - cpu_mark)
        if waited > _WAIT_THRESHOLD_NS:
            if run_end > run_start:
                recorder.add(label, "run", run_start, run_end)
            recorder.add(waiting, "wait", wall_mark, wall_mark + waited)
            run_start = wall_mark + waited
        run_end = wall_now
        wall_mark, cpu_mark = wall_now, cpu_now
        done += size
    if run_end > run_start:
        recorder.add(label, "run", run_start, run_end)
    return checksum


def _worker(kind: str, amount, label: str, waiting: str, lane: str) -> Recording:
    recorder = Recorder(lane)
    if kind == "cpu":
        iterations, chunk = amount
        record_cpu_work(iterations, recorder, label, waiting, chunk)
    else:
        with recorder.span(label, "io"):
            io_task(amount)
    return recorder.recording()


def _process_main(kind, amount, label, lane, results, start_ns) -> None:
    """Entry point of a demo process: record, then send the Recording (or the error) once."""
    begun = time.perf_counter_ns()
    try:
        recording = _worker(kind, amount, label, "waiting for a core", lane)
        pid = next(iter(recording.clocks))
        recording.events.insert(0, _start_event(lane, start_ns, begun, pid))
        results.put(("ok", recording))
    except BaseException:  # report everything, even an interrupt, as data
        results.put(("error", traceback.format_exc()))


def _start_event(lane: str, start_ns: int, begun_ns: int, pid: int):
    from .timeline import Event

    return Event(lane, "starting", "start", start_ns, max(start_ns, begun_ns), pid, None)


@dataclass
class Run:
    """One way of running the work: how long it took, and what every worker did."""

    mode: str
    seconds: float
    trace: Trace = field(repr=False)


def run_work(
    mode: str,
    *,
    kind: str = "cpu",
    workers: int = 2,
    task_seconds: float = 0.25,
    start_method: str | None = None,
) -> Run:
    """Run `workers` equal tasks of `kind` ("cpu" or "io") serially, in threads or in processes."""
    check_choice("mode", mode, MODES)
    check_choice("kind", kind, ("cpu", "io"))
    check_int("workers", workers, 1, MAX_WORKERS)
    check_float("task_seconds", task_seconds, 0.001, 5.0)
    amount = (
        (iterations_for(task_seconds), iterations_for(_CHUNK_SECONDS))
        if kind == "cpu" else task_seconds
    )
    labels = [f"task {i}" for i in range(workers)]
    trace = Trace()
    started = time.perf_counter_ns()
    if mode == "serial":
        for label in labels:
            trace.extend(_worker(kind, amount, label, "waiting", "main thread"))
    elif mode == "threads":
        _run_threads(kind, amount, labels, trace)
    else:
        method = start_method or _quiet_start_method()
        _run_processes(kind, amount, labels, trace, method)
    seconds = (time.perf_counter_ns() - started) / 1e9
    return Run(mode, seconds, trace)


def _quiet_start_method() -> str:
    # fork from a kernel (which runs threads) is deprecated on 3.12+; forkserver starts fast
    # and is safe; spawn is what macOS and Windows offer.
    return "forkserver" if "forkserver" in available_start_methods() else "spawn"


def _run_threads(kind: str, amount: float, labels: list[str], trace: Trace) -> None:
    recordings: list[Recording | None] = [None] * len(labels)
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            recordings[i] = _worker(kind, amount, labels[i], "waiting for the GIL", f"thread {i}")
        except BaseException as exc:  # surfaced in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(len(labels))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + _TIMEOUT_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"threads did not finish within {_TIMEOUT_SECONDS:.0f} s")
    for recording in recordings:
        trace.extend(recording)


def _run_processes(kind, amount, labels, trace: Trace, start_method: str) -> None:
    ctx = mp_context(start_method)
    if start_method == "forkserver":
        # The fork server is started once per kernel, as a long-running program would; what the
        # timeline then shows is the cost of each process, not of the server.
        ctx.set_forkserver_preload([__name__])
        from multiprocessing import forkserver

        forkserver.ensure_running()
    results = ctx.Queue()
    processes = []
    try:
        for i, label in enumerate(labels):
            process = ctx.Process(
                target=_process_main, name=f"process {i}",
                args=(kind, amount, label, f"process {i}", results, time.perf_counter_ns()),
            )
            process.start()
            processes.append(process)
        deadline = time.monotonic() + _TIMEOUT_SECONDS
        for _ in labels:
            try:
                status, payload = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except _queue.Empty:
                raise TimeoutError(
                    f"processes did not finish within {_TIMEOUT_SECONDS:.0f} s"
                ) from None
            if status == "error":
                raise RuntimeError(f"a worker process failed:\n{payload}")
            trace.extend(payload)
        for process in processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
    finally:  # an error or the kernel's interrupt: nothing is left running
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
        results.close()
        results.join_thread()


@dataclass
class Comparison:
    """The same work run every way; speed-ups are against the serial run."""

    kind: str
    runs: dict[str, Run]

    def speedup(self, mode: str) -> float:
        return self.runs["serial"].seconds / self.runs[mode].seconds

    def summary(self) -> str:
        parts = [f"{mode}: {run.seconds * 1000:.0f} ms" for mode, run in self.runs.items()]
        speedups = [f"{mode} ×{self.speedup(mode):.2f}" for mode in self.runs if mode != "serial"]
        return "; ".join(parts) + " — speed-up vs serial: " + ", ".join(speedups)


def compare(
    kind: str = "cpu",
    workers: int = 2,
    task_seconds: float | None = None,
    start_method: str | None = None,
    progress=None,
) -> Comparison:
    """Run the same `workers` tasks serially, in threads and in processes.

    `progress(fraction, text)`, when given, is told after each mode (the panel's progress bar).
    """
    if task_seconds is None:
        task_seconds = 0.05 if QUICK else 0.25
    runs = {}
    for done, mode in enumerate(MODES):
        if progress:
            progress(done / len(MODES), f"running {mode}…")
        runs[mode] = run_work(mode, kind=kind, workers=workers, task_seconds=task_seconds,
                              start_method=start_method)
    return Comparison(kind, runs)


def plot_comparison(comparison: Comparison, fig=None):
    """Draw one timeline per mode, stacked on a shared time axis. Returns the artists."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(11, 6.5), layout="constrained")
    heights = [max(1, len(run.trace.lanes())) for run in comparison.runs.values()]
    axes = fig.subplots(len(comparison.runs), 1, sharex=True, height_ratios=heights)
    artists = []
    for ax, (mode, run) in zip(axes, comparison.runs.items()):
        title = f"{mode}: {run.seconds * 1000:.0f} ms"
        if mode != "serial":
            title += f" (×{comparison.speedup(mode):.2f} vs serial)"
        artists += plot_timeline(run.trace, ax, title=title)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    return artists


def panel():
    """The chapter's panel: kind of work, workers, task size and start method, re-run at will."""
    from .widgets import Choice, Float, Int, Panel

    def demo(fig, progress, kind, workers, task_seconds, start_method):
        comparison = compare(kind, workers, task_seconds, start_method, progress=progress)
        fig.set_size_inches(11, 2.2 + 0.55 * 3 * workers)
        plot_comparison(comparison, fig)
        return comparison.summary()

    methods = available_start_methods()
    return Panel(
        "Serial vs threads vs processes",
        [
            Choice("kind", ["cpu", "io"], "cpu", label="work"),
            Int("workers", 1, 4, 2),
            Float("task_seconds", 0.02, 1.0, 0.05 if QUICK else 0.25, step=0.01,
                  label="seconds per task"),
            Choice("start_method", methods, _quiet_start_method(), label="start method"),
        ],
        demo,
    )
