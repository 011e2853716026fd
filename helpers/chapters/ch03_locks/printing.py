"""Why printing needs a lock: several processes printing at once garble each other's lines.

Data flow of `print_demo`::

    the kernel                                   worker i (one process each)
    ----------                                   ---------------------------
    _PipeOutput: reader, writer = ctx.Pipe(duplex=False),
                 a thread drains `reader` into memory
    Workers: add(print_into, writer, lock, i, …)
                                                 sys.stdout = unbuffered text stream on
                                                              the pipe's write end
                                                 greet(lock, i, lines)   # plain print() calls:
                                                   every piece of a line is one write(2)
    after the run: close `writer`, the thread reads to the end (EOF, or silence once asked to
    stop), count whole and broken lines: PrintResult (the text, the counts)

Why a pipe: what a child writes to the standard output it inherits reaches a notebook on Linux
and macOS (the kernel captures its file descriptors), in whichever cell runs when it arrives, and
does not reach the notebook on Windows. A pipe is what the Jupyter kernel captures output
through (and what a shell's `|` connects), so every child here prints into the write end of one
shared pipe, and the kernel shows what came out. (A pipe also shows the garbling better than a
file opened in append mode: the file's writers tend to take turns in long runs of whole lines.)
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from dataclasses import dataclass

from helpers.course import check_int, check_start_method, check_timeout

from .workers import Workers, checked

__all__ = ["MAX_LINES", "MAX_PRINTERS", "PrintResult", "count_lines", "greet", "print_demo",
           "print_into"]

# Lines per worker: a few hundred make garbling near certain when two workers overlap on two
# cores; the cap keeps a demo's file small (each line is ~30 bytes).
MAX_LINES = 5000
# Two printers are the least that can garble; eight fill any screen with confetti.
MAX_PRINTERS = 8
_LINE = re.compile(r"worker (\d+) says hello, line (\d+)")
# How many lines of the output `PrintResult.head` shows by default: one screen.
_HEAD_LINES = 12
# The kernel's reader thread: how long one poll of the pipe waits, how much one read takes (a
# whole pipe's worth), and how long the kernel waits for the thread once the workers are done.
_DRAIN_POLL_SECONDS = 0.05
_READ_BYTES = 65536
_DRAIN_JOIN_SECONDS = 5.0


@checked(worker=(1, MAX_PRINTERS), lines=(1, MAX_LINES))
def greet(lock, worker, lines):
    """Print `lines` lines; with a lock, hold it for each whole line."""
    for line in range(lines):
        if lock is None:
            print("worker", worker, "says hello, line", line)
        else:
            with lock:
                print("worker", worker, "says hello, line", line)


@checked(worker=(1, MAX_PRINTERS), lines=(1, MAX_LINES))
def print_into(rec, writer, lock, worker, lines):
    """Run `greet` with this process's stdout on the pipe's write end, one write(2) per piece."""
    raw = io.FileIO(writer.fileno(), "wb", closefd=False)
    # write_through: every print() piece goes straight to write(2), as with `python -u`.
    stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    saved, sys.stdout = sys.stdout, stream
    try:
        with rec.span("printing", "run"):
            greet(lock, worker, lines)
    finally:
        sys.stdout = saved
        stream.close()  # the stream only: closefd=False leaves the pipe to `writer`
        writer.close()
    return os.getpid()


class _PipeOutput:
    """A pipe the workers print into, and a thread in the kernel that reads it into memory (so
    that nothing the workers write waits for a reader). Closing the kernel's write end on the way
    out lets the thread read to the end."""

    def __init__(self, ctx) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self._chunks: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="ch03-print-drain", daemon=True)

    def _drain(self) -> None:
        """Read the pipe until EOF, or until asked to stop and the pipe stayed silent a poll."""
        while True:
            try:
                ready = self.reader.poll(_DRAIN_POLL_SECONDS)
                data = os.read(self.reader.fileno(), _READ_BYTES) if ready else None
            except OSError:  # the kernel closed the pipe: nothing more to read
                return
            if ready:
                if not data:  # EOF: every write end is closed
                    return
                self._chunks.append(data)
            elif self._stop.is_set():
                return

    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", errors="replace")

    def __enter__(self) -> _PipeOutput:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.writer.close()  # ours: the workers' copies closed when they ended
        self._stop.set()
        self._thread.join(_DRAIN_JOIN_SECONDS)
        self.reader.close()


@dataclass
class PrintResult:
    """What came out when `workers` processes printed `lines` lines each."""

    locked: bool
    workers: int
    lines: int
    text: str
    whole: int  # output lines that are exactly one line as printed
    broken: int  # output lines that are not (pieces of two or more lines, or a stray piece)
    missing: int  # lines printed that do not appear whole anywhere

    @property
    def expected(self) -> int:
        return self.workers * self.lines

    def head(self, n: int = _HEAD_LINES) -> str:
        """`n` lines of the output from just before the first broken one (or from the start),
        each numbered and marked whole (ok) or broken (✗)."""
        lines = self.text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the text ends with a newline: no line after it
        broken = [i for i, line in enumerate(lines) if not _LINE.fullmatch(line)]
        first = max(0, broken[0] - 2) if broken else 0
        shown = [f"lines {first + 1}-{min(first + n, len(lines))} of {len(lines)}:"]
        for number, line in enumerate(lines[first:first + n], start=first + 1):
            mark = "ok" if _LINE.fullmatch(line) else " ✗"
            shown.append(f"{number:5} {mark} | {line}")
        return "\n".join(shown)

    def __str__(self) -> str:
        how = "with a Lock around each print" if self.locked else "without a lock"
        return (f"{self.workers} workers × {self.lines} lines {how}: "
                f"{self.whole} of {self.expected} lines whole, {self.broken} broken lines, "
                f"{self.missing} lines never appear whole")


def count_lines(text: str, workers: int, lines: int) -> tuple[int, int, int]:
    """(whole, broken, missing) for the output `text` of `greet` run by `workers` processes."""
    check_int("workers", workers, 1, MAX_PRINTERS)
    check_int("lines", lines, 1, MAX_LINES)
    found: set[tuple[int, int]] = set()
    whole = broken = 0
    for line in text.split("\n"):
        if not line:
            # An empty piece: the end of the text, or a newline torn from its line.
            continue
        match = _LINE.fullmatch(line)
        if match:
            whole += 1
            found.add((int(match.group(1)), int(match.group(2))))
        else:
            broken += 1
    # A "\n\n" in the middle means a newline was printed away from its line: that line is broken.
    broken += text.rstrip("\n").count("\n\n")
    missing = sum((w, k) not in found for w in range(1, workers + 1) for k in range(lines))
    return whole, broken, missing


def print_demo(workers: int = 3, lines: int = 200, *, locked: bool = False,
               start_method: str | None = None, timeout: float = 60.0) -> PrintResult:
    """`workers` processes each print `lines` lines at once, with or without a shared Lock."""
    check_int("workers", workers, 2, MAX_PRINTERS)
    check_int("lines", lines, 1, MAX_LINES)
    start_method = check_start_method(start_method)
    check_timeout("timeout", timeout)
    with Workers(start_method) as w, _PipeOutput(w.ctx) as output:
        lock = w.ctx.Lock() if locked else None  # one lock, handed to every worker
        for worker in range(1, workers + 1):
            w.add(print_into, output.writer, lock, worker, lines)  # print_into(rec, ...)
        w.run(timeout)
    text = output.text()
    return PrintResult(locked, workers, lines, text, *count_lines(text, workers, lines))
