"""Chapter 08 figures: the matrix's known shape on this machine, and its demo cells' times.

Each CPU speed-up comes from `_REPEATS` rounds in one process, every cell a full `measure_matrix`
run (processes and pools started inside, as the notebook does): processes on CPU-bound pure
Python and threads on GIL-releasing C (hashlib) are what the machine can do, the best round;
threads on pure Python with the GIL must stay near 1, the median round. gevent and asyncio on 200
waits of 100 ms: one run (waits, not cores: nothing to be best at).
"""

from __future__ import annotations

import time
from statistics import median

from helpers.chapters.ch08_choosing import make_panel, measure_matrix
from helpers.chapters.ch08_choosing.views import MODEL_GROUPS
from helpers.course import QUICK, kernel_safe_start_method, usable_cores

# Rounds of the CPU rows: enough for a best and a median, few enough to keep the bench short.
_REPEATS = 3
# The sizes: tasks long enough that a process start is small beside them.
_CPU = (250.0, 8)
_WAITS = (100.0, 200)
# The notebook's reader sizes (its parameters cell without CC_QUICK).
_READER = {
    "CPU, pure Python": (60.0, 4), "CPU in C, GIL released": (60.0, 4), "I/O waits": (20.0, 40),
    "many tiny tasks": (0.05, 400), "large payload": (4.0, 8), "mixed": (40.0, 8),
}


def measure(report) -> None:
    method = kernel_safe_start_method()
    cores = usable_cores()
    runs = {"processes": [], "threads": [], "pool": [], "hash threads": []}
    for _ in range(_REPEATS):
        m = measure_matrix(["CPU, pure Python", "CPU in C, GIL released"],
                           ["serial", "threads", "processes", "pool"],
                           sizes={"CPU, pure Python": _CPU, "CPU in C, GIL released": _CPU},
                           start_method=method)
        runs["processes"].append(m.cell("CPU, pure Python", "processes").speedup)
        runs["threads"].append(m.cell("CPU, pure Python", "threads").speedup)
        runs["pool"].append(m.cell("CPU, pure Python", "pool").speedup)
        runs["hash threads"].append(m.cell("CPU in C, GIL released", "threads").speedup)
    unit = f"x serial ({cores} cores, 8 tasks of 250 ms)"
    serial = "the matrix's serial cell, same tasks, in the same measure_matrix"
    # Speed-ups the machine can give: the best round. Threads under the GIL must stay near 1:
    # the median round.
    report("matrix_processes_cpu_python", max(runs["processes"]), unit + ", best round",
           ">= 1.7", baseline=serial)
    report("matrix_pool_cpu_python", max(runs["pool"]), unit + ", best round")
    report("matrix_threads_cpu_python", median(runs["threads"]), unit + ", with the GIL",
           "0.8..1.2", baseline=serial)
    report("matrix_threads_hashlib", max(runs["hash threads"]), unit + ", hashlib, best round",
           ">= 1.5", baseline=serial)

    waits = measure_matrix(["I/O waits"], ["serial", "threads", "gevent", "asyncio"],
                           sizes={"I/O waits": _WAITS}, start_method=method)
    for model in ("gevent", "asyncio"):
        report(f"matrix_{model}_200_waits", waits.cell("I/O waits", model).speedup,
               "x serial (200 waits of 100 ms)", ">= 10",
               baseline="the matrix's serial cell, the same waits, in the same measure_matrix")
    report("matrix_threads_200_waits", waits.cell("I/O waits", "threads").speedup,
           "x serial (200 waits of 100 ms)")

    # The notebook's two matrix cells and its panel, with the reader's sizes.
    rows = list(_READER)
    for number, part in enumerate((rows[:3], rows[3:]), 1):
        started = time.perf_counter()
        measure_matrix(part, sizes=_READER, start_method=method)
        report(f"matrix_cell_{number}_seconds", time.perf_counter() - started,
               "s (reader sizes)", "<= 10")
    started = time.perf_counter()
    make_panel().run(models=next(iter(MODEL_GROUPS)))
    report("choosing_panel_seconds", time.perf_counter() - started, "s (panel defaults)",
           "<= 10")
    if QUICK:
        report("choosing_quick_mode", 1, "CC_QUICK is set: reader figures are not reader's")
