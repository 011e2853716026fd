"""The GIL, shown: the same work run serially, in threads and in processes, on one timeline.

Chapter 00's demo. Each worker records its own spans while it works, and the record tells the
truth about the GIL because CPU work is recorded in short chunks, each split by the thread's own
CPU clock into the part that ran and the part that waited::

    chunk of work (wall)   |<------------- 5.2 ms ------------->|
    thread CPU time used                     |<---- 0.2 ms ---->|
    recorded as            [ wait: GIL or core ][     run      ]

Two threads of CPU-bound Python take turns holding the GIL: a thread that has waited one
switch interval (``sys.getswitchinterval()``) for the GIL asks the running one to drop it, so their
lanes alternate; two processes each have a GIL of their own and run at once. A thread's wall time
minus its CPU time is all the time it did not run: waiting for the GIL, or for a core the OS gave
to another program — the record cannot tell the two apart. Compressing with ``zlib`` (kind
``"zlib"``) is C code that releases the GIL while it works, so threads run it at once.

    gil_tasks(kind) ──> (fn, tasks) ──> helpers.runners.compare(MODES, fn, tasks)
        kernel ──start──> process 0 ──┐ records locally, then sends its trace once
               ──start──> process 1 ──┤ through a queue (no per-event traffic)
               <── trace, trace ──────┘  ──> Comparison ──> plot_comparison(c, axes)
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

from helpers.course import (
    QUICK,
    available_start_methods,
    check_callable,
    check_choice,
    check_float,
    check_int,
    check_start_method,
    kernel_safe_start_method,
    one_core_note,
)
from helpers.runners import (
    Comparison,
    Run,
    compare,
    plot_comparison,
    run_processes,
    run_serial,
    run_threads,
)
from helpers.timeline import Recorder, TracedResult
from helpers.workloads import MAX_ITERATIONS, cpu_task, io_task, iterations_for

__all__ = [
    "KINDS",
    "MODES",
    "chunked_compress_task",
    "chunked_cpu_task",
    "compare_gil",
    "gil_tasks",
    "make_panel",
    "record_cpu_work",
    "recorded_io_task",
    "run_work",
]

MODES = ("serial", "threads", "processes")
KINDS = ("cpu", "zlib", "io")
# One chunk is about 0.2 ms of work: short against the GIL's 5 ms switch interval, so a wait is
# placed within 0.2 ms of where it happened, and long against the ~1 µs it costs to time a chunk.
_CHUNK_SECONDS = 0.0002
# A chunk whose wall time exceeds its CPU time by more than this waited (for the GIL or a core);
# below it, the difference is timer noise.
_WAIT_THRESHOLD_NS = 50_000
# The longest the demo waits for its workers before it gives up and stops them.
_TIMEOUT_SECONDS = 60.0
MAX_WORKERS = 8  # a demo on a 2-core machine gains nothing from more; it only gets slower
# zlib compresses the demo's text at tens of MB/s per core; one piece of 64 KiB is about a
# millisecond of work: short against a task, long against timing it.
_PIECE_BYTES = 64 * 1024
# A task compresses at most this much: about ten seconds on a slow core.
_MAX_COMPRESS_BYTES = 512 * 1024 * 1024
_MAX_LABEL = 200  # a lane label longer than this is a mistake, not a name


def record_cpu_work(
    iterations: int, recorder: Recorder, label: str, waiting: str, chunk: int | None = None
) -> int:
    """Do `iterations` of `cpu_task` in chunks, recording run spans and `waiting` spans.

    `chunk` is the iterations per timed chunk; a child process gets it from its parent, so it
    does not spend its first 60 ms calibrating.
    """
    check_int("iterations", iterations, 0, MAX_ITERATIONS)
    if chunk is not None:
        check_int("chunk", chunk, 1, MAX_ITERATIONS)
    if not isinstance(recorder, Recorder):
        raise TypeError(f"recorder must be a helpers.timeline.Recorder, got {recorder!r}")
    _check_label("label", label)
    _check_label("waiting", waiting)
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


def _check_label(name: str, value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_LABEL:
        raise ValueError(f"{name} must be a string of 1 to {_MAX_LABEL} characters, got "
                         f"{value!r:.80}")
    return value


def _what_a_wait_is() -> str:
    if multiprocessing.parent_process() is not None:
        return "waiting for a core"  # a process has a GIL of its own: only the OS makes it wait
    if threading.current_thread() is not threading.main_thread():
        # Wall minus CPU time: the GIL, or a core the OS gave to another program meanwhile.
        return "waiting for the GIL (or a core)"
    return "waiting for a core"


def chunked_cpu_task(iterations: int, chunk: int, label: str) -> TracedResult:
    """`cpu_task` recorded chunk by chunk, so the timeline shows when it ran and when it waited."""
    check_int("iterations", iterations, 0, MAX_ITERATIONS)
    check_int("chunk", chunk, 1, MAX_ITERATIONS)
    _check_label("label", label)
    recorder = Recorder(cpus=True)
    value = record_cpu_work(iterations, recorder, label, _what_a_wait_is(), chunk)
    return TracedResult(value, recorder.recording())


def _text(size: int) -> bytes:
    """`size` bytes of word-like text (compresses about 3:1, like a log), the same every time."""
    words = b"the GIL lets one thread run Python code at a time while C code may release it "
    return (words * (size // len(words) + 1))[:size]


def chunked_compress_task(size: int, label: str) -> TracedResult:
    """Compress `size` bytes of text with zlib, piece by piece, recording run and wait spans.

    ``zlib`` releases the GIL while it compresses a buffer, so threads doing this run at once; a
    piece's wall time beyond its thread CPU time is recorded as waiting, as in `record_cpu_work`.
    Returns the compressed size.
    """
    import zlib

    check_int("size", size, 1, _MAX_COMPRESS_BYTES)
    _check_label("label", label)
    piece = _text(min(size, _PIECE_BYTES))
    recorder = Recorder(cpus=True)
    waiting = _what_a_wait_is()
    compressor, out, done = zlib.compressobj(6), 0, 0
    wall_mark, cpu_mark = time.perf_counter_ns(), time.thread_time_ns()
    while done < size:
        chunk = piece[: min(len(piece), size - done)]
        out += len(compressor.compress(chunk))
        wall_now, cpu_now = time.perf_counter_ns(), time.thread_time_ns()
        waited = (wall_now - wall_mark) - (cpu_now - cpu_mark)
        if waited > _WAIT_THRESHOLD_NS:
            recorder.add(waiting, "wait", wall_mark, wall_mark + waited)
            recorder.add(label, "run", wall_mark + waited, wall_now)
        else:
            recorder.add(label, "run", wall_mark, wall_now)
        wall_mark, cpu_mark = wall_now, cpu_now
        done += len(chunk)
    out += len(compressor.flush())
    return TracedResult(out, recorder.recording())


def recorded_io_task(seconds: float, label: str) -> TracedResult:
    """`io_task` recorded as one ``io`` span: waiting, with the core free for others."""
    check_float("seconds", seconds, 0.0, 60.0)
    _check_label("label", label)
    recorder = Recorder(cpus=False)
    with recorder.span(label, "io"):
        io_task(seconds)
    return TracedResult(seconds, recorder.recording())


def gil_tasks(kind: str = "cpu", workers: int = 2,
              task_seconds: float = 0.25) -> tuple[Callable[..., Any], list[tuple]]:
    """`workers` equal tasks of `kind` ("cpu", "zlib" or "io"), each recording its own spans.

    Returns ``(fn, tasks)`` for `helpers.runners.compare`: CPU work is recorded chunk by chunk
    (`chunked_cpu_task`), so turns at the GIL show; compressing is recorded piece by piece
    (`chunked_compress_task`, sized by a quick calibration); a wait is one ``io`` span.
    """
    check_choice("kind", kind, KINDS)
    check_int("workers", workers, 1, MAX_WORKERS)
    check_float("task_seconds", task_seconds, 0.001, 5.0)
    if kind == "cpu":
        sizes: tuple = (iterations_for(task_seconds), iterations_for(_CHUNK_SECONDS))
        return chunked_cpu_task, [(*sizes, f"task {i}") for i in range(workers)]
    if kind == "zlib":
        size = min(_MAX_COMPRESS_BYTES, max(1, round(_compress_rate() * task_seconds)))
        return chunked_compress_task, [(size, f"task {i}") for i in range(workers)]
    return recorded_io_task, [(task_seconds, f"task {i}") for i in range(workers)]


_rates: dict[str, float] = {}


def _compress_rate() -> float:
    """Bytes per second zlib compresses the demo's text on this core (measured once)."""
    if "zlib" not in _rates:
        import zlib

        piece, best = _text(_PIECE_BYTES), 0.0
        for _ in range(5):  # the fastest of five: the one least disturbed by other programs
            compressor = zlib.compressobj(6)
            started = time.perf_counter()
            for _ in range(4):
                compressor.compress(piece)
            compressor.flush()
            best = max(best, 4 * len(piece) / max(time.perf_counter() - started, 1e-9))
        _rates["zlib"] = best
    return _rates["zlib"]


def run_work(
    mode: str,
    *,
    kind: str = "cpu",
    workers: int = 2,
    task_seconds: float = 0.25,
    start_method: str | None = None,
) -> Run:
    """Run `workers` equal tasks of `kind` (see `KINDS`) serially, in threads or in processes."""
    check_choice("mode", mode, MODES)
    fn, tasks = gil_tasks(kind, workers, task_seconds)
    start_method = check_start_method(start_method)
    if mode == "serial":
        run = run_serial(fn, tasks)
    elif mode == "threads":
        run = run_threads(fn, tasks, timeout=_TIMEOUT_SECONDS)
    else:
        run = run_processes(fn, tasks, start_method=start_method, timeout=_TIMEOUT_SECONDS)
    run.raise_failures()
    return run


def compare_gil(kind: str = "cpu", workers: int = 2, task_seconds: float | None = None,
                start_method: str | None = None, progress=None) -> Comparison:
    """`gil_tasks` run serially, in threads and in processes: ``compare(MODES, *gil_tasks(…))``."""
    if task_seconds is None:
        task_seconds = 0.05 if QUICK else 0.25
    fn, tasks = gil_tasks(kind, workers, task_seconds)
    start_method = check_start_method(start_method)
    if progress is not None:
        check_callable("progress", progress)
    return compare(MODES, fn, tasks, start_method=start_method, timeout=_TIMEOUT_SECONDS,
                   progress=progress)


def make_panel():
    """The chapter's panel: kind of work, workers, task size and start method, re-run at will."""
    from helpers.widgets import Choice, Float, Int, Panel

    def demo(fig, progress, kind, workers, task_seconds, start_method):
        comparison = compare_gil(kind, workers, task_seconds, start_method, progress=progress)
        fig.set_size_inches(11, 2.2 + 0.55 * 3 * workers)
        axes = fig.subplots(len(MODES), 1, sharex=True)
        plot_comparison(comparison, list(axes))
        note = "" if kind == "io" else one_core_note(  # waiting needs no core: io is the same
            "workers that compute take turns on it and cannot beat serial",
            "processes, and threads running zlib, would compute at once")
        return f"{comparison.summary()} {note}".strip()

    methods = available_start_methods()
    return Panel(
        "Serial vs threads vs processes",
        [
            Choice("kind", list(KINDS), "cpu", label="work"),
            Int("workers", 1, 4, 2),
            Float("task_seconds", 0.02, 1.0, 0.05 if QUICK else 0.25, step=0.01,
                  label="seconds per task"),
            Choice("start_method", methods, kernel_safe_start_method(), label="start method"),
        ],
        demo,
    )
