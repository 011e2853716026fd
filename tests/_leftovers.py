"""What a test run can leave on the machine: shared-memory segments and named semaphores."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

SHM = Path("/dev/shm")


def segments() -> set[str]:
    """The entries of /dev/shm now (segments and named semaphores)."""
    return set(os.listdir(SHM)) if SHM.is_dir() else set()


def mapped_elsewhere(names: set[str], *, exclude_own: bool = True) -> set[str]:
    """Which of `names` a process outside this test's tree (any process, with
    ``exclude_own=False``) has mapped: someone else's segment, or one still in use.

    On a shared machine other programs make and unlink segments while a test runs; only those
    made by this test's own processes (mapped by no one else) count as left behind.
    """
    ours = ({os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
            if exclude_own else set())
    found: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            if int(maps.parent.name) in ours:
                continue
            text = maps.read_text(errors="replace")
        except (OSError, ValueError):
            continue
        found |= {name for name in names if f"/dev/shm/{name}" in text}
    return found


def unowned_new_segments(before: set[str]) -> list[str]:
    """Entries of /dev/shm made since `before` that no live process has mapped: left behind.

    A semaphore or segment still in use by another program on a shared machine is mapped by it;
    one that nobody maps any more is garbage, whoever made it.
    """
    new = segments() - before
    if not new:
        return []
    return sorted(new - mapped_elsewhere(new, exclude_own=False))
