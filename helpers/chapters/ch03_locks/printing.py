"""Why printing needs a lock: several processes printing at once garble each other's lines.

Data flow of `print_demo`::

    the kernel                                   worker i (one process each)
    ----------                                   ---------------------------
    path = a new empty file
    Workers: add(_print_into, path, lock, i, …)
                                                 sys.stdout = unbuffered text stream on
                                                              open(path, "ab"): O_APPEND
                                                 greet(lock, i, lines)   # plain print() calls:
                                                   every piece of a line is one write(2)
    read the file back, count whole and broken lines: PrintResult (the text, the counts)

Why a file: what a child writes to its standard output reaches a notebook, or not, depending on
the start method and the platform. Every child here prints into one file opened in append mode,
so each write lands at the end, exactly as writes to a shared terminal or pipe would, and the
kernel shows what came out.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass

from helpers.course import check_int, check_start_method, check_timeout

from .workers import Workers, checked

__all__ = ["MAX_LINES", "MAX_PRINTERS", "PrintResult", "count_lines", "greet", "print_demo"]

# Lines per worker: a few hundred make garbling near certain when two workers overlap on two
# cores; the cap keeps a demo's file small (each line is ~30 bytes).
MAX_LINES = 5000
# Two printers are the least that can garble; eight fill any screen with confetti.
MAX_PRINTERS = 8
_LINE = re.compile(r"worker (\d+) says hello, line (\d+)")
# How many lines of the output `PrintResult.head` shows by default: one screen.
_HEAD_LINES = 12


@checked(worker=(1, MAX_PRINTERS), lines=(1, MAX_LINES))
def greet(lock, worker, lines):
    """Print `lines` lines; with a lock, hold it for each whole line."""
    for line in range(lines):
        if lock is None:
            print("worker", worker, "says hello, line", line)
        else:
            with lock:
                print("worker", worker, "says hello, line", line)


def _print_into(rec, path: str, lock, worker: int, lines: int) -> int:
    """Run `greet` with this process's stdout pointed at `path`, one write(2) per piece."""
    raw = open(path, "ab", buffering=0)  # noqa: SIM115 - closed below; "a" means O_APPEND
    # write_through: every print() piece goes straight to write(2), as with `python -u`.
    stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    saved, sys.stdout = sys.stdout, stream
    try:
        with rec.span("printing", "run"):
            greet(lock, worker, lines)
    finally:
        sys.stdout = saved
        stream.close()
    return os.getpid()


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
    fd, path = tempfile.mkstemp(prefix="cc-ch03-print-", suffix=".txt")
    os.close(fd)
    try:
        with Workers(start_method) as w:
            lock = w.ctx.Lock() if locked else None
            for worker in range(1, workers + 1):
                w.add(_print_into, path, lock, worker, lines)
            w.run(timeout)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    finally:
        os.unlink(path)
    return PrintResult(locked, workers, lines, text, *count_lines(text, workers, lines))
