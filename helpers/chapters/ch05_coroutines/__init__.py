"""Chapter 05, coroutines, in four notebooks: 05a_coroutines (greenlets on the timeline, the
hub, a CPU hog), 05b_patching (Timeout, monkey patching, memory), 05c_gevent_api (gevent's API,
one downloader at a time) and 05d_asyncio (the coroutines Python ships with).

    greenlet_demos.py   chores, sleepers, switching, lost updates, cpu_blocks / beside_ticker
                        (un-patched gevent, run in the kernel within one call; every join bounded)
    api_demos.py        05c's measured demos: queue, event, pool, locks, local, threadpool
    asyncio_demos.py    05d: fetch_page and crawl_pages (asyncio streams, a TaskGroup and a
                        Semaphore), the loop's slow-callback warnings as data, run_in_thread
    patching_demos.py   functions meant for `helpers.runners.run_patched` (a patched child)
    memory.py           memory per greenlet and per thread, measured in fresh children
    views.py            timelines with waits, the sleepers' picture, the hub's split, make_panel

`views` (matplotlib, ipywidgets) is imported on first use of one of its names: a child process
that runs a demo function from this package (`helpers.runners.run_patched`) then starts in a
fraction of the time and measures memory against a cleaner baseline.
"""

from .api_demos import (
    blocking_in_threadpool,
    local_vs_shared,
    over_release,
    pool_run,
    producer_consumer,
    signal_waiters,
)
from .asyncio_demos import (
    BLOCKING,
    capture_slow_callbacks,
    crawl_pages,
    fetch_page,
    local_site,
    run_in_thread,
    task_demo,
)
from .greenlet_demos import (
    CHORES,
    JOIN_TIMEOUT_SECONDS,
    YIELDS,
    Chore,
    beside_ticker,
    chore,
    chores,
    cpu_blocks,
    fail,
    fetch,
    interleaving,
    join_all,
    lost_updates,
    quiet_failures,
    sleepers,
    spawn_named,
    switch_cost,
    traced,
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
    sleep_in_greenlets,
    sleep_times,
)

# Names the notebooks use without showing their source (tests/test_code_on_page.py): none of them
# is the lesson. Each says why.
__plumbing__ = (
    "traced",  # recording: runs a cell's own function under the greenlet recorder, times it
    "quiet_failures",  # display: keeps the hub from printing a traceback the cell reads itself
    "hub_split",  # a view: the hub lane's time summed into polling and dispatching
    "local_site",  # infrastructure: starts chapter 06's local test site (a server in a child)
    # machinery: runs a coroutine the cell wrote (shown there) on a fresh loop in a thread, bounded
    "run_in_thread",
)

# Names of `views`, imported on first use (see the docstring).
_VIEWS = ("HUB_LEGEND", "alive_counts", "hub_split", "make_panel", "plot_runs", "plot_sleepers",
          "plot_tasks", "with_waits")


def __getattr__(name: str):
    if name in _VIEWS:
        from . import views

        return getattr(views, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_VIEWS))

__all__ = [
    "BLOCKING",
    "CHORES",
    "Chore",
    "DISTRIBUTIONS",
    "HUB_LEGEND",
    "JOIN_TIMEOUT_SECONDS",
    "PATCH_TARGETS",
    "WORKER_KINDS",
    "YIELDS",
    "alive_counts",
    "beside_ticker",
    "blocking_in_threadpool",
    "blocking_sleepers",
    "capture_slow_callbacks",
    "chore",
    "chores",
    "compare_memory",
    "cpu_blocks",
    "crawl_pages",
    "fail",
    "fetch",
    "fetch_page",
    "hub_split",
    "interleaving",
    "join_all",
    "late_patch",
    "local_site",
    "local_vs_shared",
    "lost_updates",
    "make_panel",
    "memory_per_worker",
    "over_release",
    "patch_report",
    "plot_runs",
    "plot_sleepers",
    "plot_tasks",
    "pool_run",
    "pool_sleepers",
    "producer_consumer",
    "quiet_failures",
    "run_in_thread",
    "signal_waiters",
    "sleep_in_greenlets",
    "sleep_times",
    "sleepers",
    "spawn_named",
    "switch_cost",
    "task_demo",
    "traced",
    "with_waits",
]
