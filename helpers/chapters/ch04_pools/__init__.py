"""Chapter 04, pools: pool vs process-per-task, chunksize, Amdahl's law, failures, interrupts.

    panel.py    task_items, pool_summary, the chapter's make_panel
    demos.py    compare_process_per_task, compare_chunksizes, compare_uneven, exception_in_task,
                crash_in_worker,
                interrupt_demo, maxtasksperchild_demo
    amdahl.py   measure_amdahl, fit_serial_fraction, plot_amdahl
"""

from .amdahl import (
    AmdahlRun,
    amdahl_speedup,
    fit_serial_fraction,
    measure_amdahl,
    plot_amdahl,
)
from .demos import (
    ChunksizeComparison,
    FailureReport,
    InterruptReport,
    PerTaskComparison,
    UnevenComparison,
    compare_chunksizes,
    compare_process_per_task,
    compare_uneven,
    crash_in_worker,
    die_on,
    exception_in_task,
    fail_on,
    interrupt_demo,
    live_children,
    maxtasksperchild_demo,
)
from .panel import (
    DEFAULT_TASK_MS,
    DEFAULT_TASKS,
    LONG_FACTOR,
    demo,
    make_panel,
    pool_summary,
    task_items,
    uneven_items,
)

__all__ = [
    "AmdahlRun",
    "ChunksizeComparison",
    "DEFAULT_TASKS",
    "DEFAULT_TASK_MS",
    "FailureReport",
    "InterruptReport",
    "LONG_FACTOR",
    "PerTaskComparison",
    "UnevenComparison",
    "amdahl_speedup",
    "compare_chunksizes",
    "compare_process_per_task",
    "compare_uneven",
    "crash_in_worker",
    "demo",
    "die_on",
    "exception_in_task",
    "fail_on",
    "fit_serial_fraction",
    "interrupt_demo",
    "live_children",
    "make_panel",
    "maxtasksperchild_demo",
    "measure_amdahl",
    "plot_amdahl",
    "pool_summary",
    "task_items",
    "uneven_items",
]
