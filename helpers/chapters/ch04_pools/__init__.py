"""Chapter 04, pools: pool vs process-per-task, chunksize, Amdahl's law, failures, interrupts.

    panel.py    task_items, pool_summary, the chapter's make_panel
    demos.py    compare_process_per_task, compare_chunksizes, compare_uneven, exception_in_task,
                crash_in_worker,
                interrupt_demo, maxtasksperchild_demo
    amdahl.py   measure_amdahl, time_job, fit_serial_fraction, plot_amdahl
    views.py    values_and_trace, core_seconds, work_per_worker, workers_computing,
                busy_machine_note: the display around the pool calls the notebooks write out
"""

from .amdahl import (
    AmdahlRun,
    amdahl_speedup,
    fit_serial_fraction,
    measure_amdahl,
    plot_amdahl,
    time_job,
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
from .views import (
    busy_machine_note,
    core_seconds,
    values_and_trace,
    work_per_worker,
    workers_computing,
)

# Chapter names a notebook may use without showing their source: none of them is a pattern.
__plumbing__ = (
    "task_items",  # task sizes calibrated to this machine's speed: data, not a pattern
    "uneven_items",  # the same, with a few long ones at the end: data, not a pattern
    "values_and_trace",  # unpacks Traced results into values and one Trace: display bookkeeping
    "work_per_worker",  # each lane's seconds on a core: a view of the trace
    "workers_computing",  # the same summed, over the wall time: a view of the trace
    "busy_machine_note",  # one core, or the load against the usable cores: facts about the machine
    "pool_summary",  # one line of figures about a panel run: formatting
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
    "busy_machine_note",
    "compare_chunksizes",
    "compare_process_per_task",
    "compare_uneven",
    "core_seconds",
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
    "time_job",
    "uneven_items",
    "values_and_trace",
    "work_per_worker",
    "workers_computing",
]
