"""Chapter 05, coroutines with gevent: greenlets on the timeline, gevent's API, monkey patching.

    greenlet_demos.py   chores, sleepers, cpu_blocks, queues, events, pools, locks, local
                        (un-patched gevent, run in the kernel within one cell)
    patching_demos.py   functions meant for `helpers.runners.run_patched` (a patched child)
    memory.py           memory per greenlet and per thread, measured in fresh children
    views.py            timelines with waits, the sleepers' picture, the chapter's make_panel
"""

from .greenlet_demos import (
    CHORES,
    YIELDS,
    Chore,
    chore,
    chores,
    cpu_blocks,
    fail,
    fetch,
    interleaving,
    local_vs_shared,
    lost_updates,
    over_release,
    pool_run,
    producer_consumer,
    quiet_failures,
    signal_waiters,
    sleepers,
)
from .memory import (
    WORKER_KINDS,
    compare_memory,
    memory_per_worker,
)
from .patching_demos import (
    DISTRIBUTIONS,
    PATCH_TARGETS,
    blocking_sleepers,
    late_patch,
    patch_report,
    pool_sleepers,
    sleep_times,
)
from .views import (
    alive_counts,
    make_panel,
    plot_runs,
    plot_sleepers,
    with_waits,
)

__all__ = [
    "CHORES",
    "Chore",
    "DISTRIBUTIONS",
    "PATCH_TARGETS",
    "WORKER_KINDS",
    "YIELDS",
    "alive_counts",
    "blocking_sleepers",
    "chore",
    "chores",
    "compare_memory",
    "cpu_blocks",
    "fail",
    "fetch",
    "interleaving",
    "late_patch",
    "local_vs_shared",
    "lost_updates",
    "make_panel",
    "memory_per_worker",
    "over_release",
    "patch_report",
    "plot_runs",
    "plot_sleepers",
    "pool_run",
    "pool_sleepers",
    "producer_consumer",
    "quiet_failures",
    "signal_waiters",
    "sleep_times",
    "sleepers",
    "with_waits",
]
