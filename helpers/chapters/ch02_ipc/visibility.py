"""Why processes need a go-between: a child works on its own copy of the data, never the parent's.

What a child starts with depends on the start method::

    the kernel                     child, fork                      child, spawn / forkserver
    ----------                     -----------                      -------------------------
    ITEMS.append("kernel")   ──>   the kernel's memory, page for    a new interpreter (spawn) or a
    BIG = 64 MiB buffer            page, shared until written       fork of the fork server: this
                                   (copy-on-write): sees ITEMS      module imported afresh, so
                                   and BIG                          ITEMS == [] and BIG is None
    child: ITEMS.append("child")   changes the child's page only: the kernel's ITEMS stays as it was

So "a child copies the parent's memory" is half right: under fork nothing is copied until one of
the two writes a page — and in CPython merely reading an object writes its reference count, so
reading the kernel's objects copies their pages too (`copy_on_write` measures both); under spawn
and forkserver nothing of the kernel's runtime state is there. Either way a change made in one
process is invisible to the other.
"""

from __future__ import annotations

import os
from typing import Any

from helpers.course import check_int, check_start_method, check_start_methods, mp_context
from helpers.runners.cleanup import close_queue, ignore_sigint, release_semaphores

from .common import Table, started

# The workers `look_and_change` and `private_memory` are the targets of the chapter's Process
# calls: module-level so every start method finds them, and not in __all__, as nothing in this
# process calls them.
__all__ = ["ITEMS", "SETTINGS", "compare_start_methods", "copy_on_write"]

# The module-level data the demos change. Children of every start method see *some* ITEMS: under
# fork the kernel's (copied), under spawn/forkserver a fresh empty one from importing this module.
ITEMS: list[str] = []
SETTINGS: dict[str, Any] = {}
_BIG: bytearray | None = None  # set by copy_on_write() for the length of one demo
_NUMBERS: list[int] | None = None  # likewise: about as many MiB of int objects as _BIG has
_INT_BYTES = 32  # an int object (28 bytes) in its 32-byte allocator block
_PAGE = 4096  # bytes: the unit in which the OS copies on write
_MIB = 1 << 20  # the demo sizes its buffer and reports memory in MiB


def look_and_change(results: Any) -> None:
    """Report what this child sees of ITEMS and SETTINGS, change both, report them again."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    saw = {"ITEMS": list(ITEMS), "SETTINGS": dict(SETTINGS)}
    ITEMS.append(f"added by the child (pid {os.getpid()})")
    SETTINGS["changed by"] = "the child"
    results.put({"pid": os.getpid(), "saw": saw,
                 "after the change": {"ITEMS": list(ITEMS), "SETTINGS": dict(SETTINGS)}})


def compare_start_methods(start_methods: list[str] | None = None) -> Table:
    """`look_and_change` under each start method, after the kernel added an item of its own."""
    methods = check_start_methods(start_methods)
    marker = "added by the kernel"
    ITEMS.append(marker)
    rows = Table()
    try:
        for method in methods:
            ctx = mp_context(check_start_method(method))
            results = ctx.Queue()
            try:
                with started(ctx.Process(target=look_and_change, args=(results,))):
                    report = results.get(timeout=30)
            finally:
                close_queue(results)
                release_semaphores(results)
            rows.append({"start method": method,
                         "the child saw ITEMS": report["saw"]["ITEMS"],
                         "the child's ITEMS after its change": report["after the change"]["ITEMS"],
                         "the kernel's ITEMS afterwards": list(ITEMS)})
    finally:
        ITEMS.remove(marker)
    return rows


def private_memory(results: Any) -> None:
    """Report this process's private memory (USS) at start, after *reading* every int of the
    module's list, and after writing one byte per page of its buffer (if it has them)."""
    ignore_sigint()  # an interrupt is for the kernel, which stops its children
    import psutil

    me = psutil.Process()
    before = me.memory_full_info().uss
    if _BIG is None or _NUMBERS is None:
        results.put({"buffer": None, "before": before, "after reading": before, "after": before})
        return
    sum(_NUMBERS)  # only reads: but each int's reference count is written, on its page
    after_reading = me.memory_full_info().uss
    for offset in range(0, len(_BIG), _PAGE):  # one write per page: each page gets copied
        _BIG[offset] = 2
    results.put({"buffer": len(_BIG), "before": before, "after reading": after_reading,
                 "after": me.memory_full_info().uss})


def copy_on_write(mib: int = 64, start_methods: list[str] | None = None) -> Table:
    """Give this module a `mib` MiB buffer and a list of about `mib` MiB of ints, start a child
    per start method, and measure the child's private memory as it reads the list, then writes
    to every page of the buffer."""
    global _BIG, _NUMBERS
    check_int("mib", mib, 1, 1024)
    methods = check_start_methods(start_methods)
    _BIG = bytearray(b"\x01") * (mib * _MIB)  # every page written: really in memory
    _NUMBERS = list(range(1000, 1000 + mib * _MIB // _INT_BYTES))  # ints above the cached ones
    rows = Table()
    try:
        for method in methods:
            ctx = mp_context(check_start_method(method))
            results = ctx.Queue()
            try:
                with started(ctx.Process(target=private_memory, args=(results,))):
                    report = results.get(timeout=30)
            finally:
                close_queue(results)
                release_semaphores(results)
            rows.append(_memory_row(method, report))
    finally:
        _BIG = _NUMBERS = None
    return rows


def _memory_row(method: str, report: dict[str, Any]) -> dict[str, str]:
    def grew(key: str, since: str) -> str:
        return f"+{(report[key] - report[since]) / _MIB:.1f} MiB"

    return {"start method": method,
            "the list and buffer in the child": ("the kernel's" if report["buffer"]
                                                 else "none: module imported anew"),
            "private memory at start": f"{report['before'] / _MIB:.1f} MiB",
            "after reading the list": grew("after reading", "before"),
            "after writing the buffer": grew("after", "after reading")}
