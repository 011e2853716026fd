"""Chapter 02: how separate processes share data, measured byte by byte.

Processes do not share memory, so every byte that crosses between them goes through a go-between.
The modules, in the order the chapter uses them::

    visibility         a child changes a global: the parent never sees it (fork: copy-on-write
                       pages, copied even by reading objects; spawn / forkserver: the module
                       imported afresh)
    channels           Queue = pipe + feeder thread + locks; what crosses (pickled bytes, a new
                       object), the join-before-drain deadlock, what cannot be pickled, Pipe ends,
                       ping-pong round trips, the cost of pickling by payload
    throughput         one sender, one receiver, four channels (Queue, Pipe, shared memory ring,
                       Manager) and memcpy: throughput by message size, both ends on a timeline
    shared             Value/Array and their lock, SharedMemory + numpy, ShareableList, who
                       unlinks, the resource tracker's warning, Manager proxies; cost per access
    producer_consumer  N producers × M consumers over one Queue with sentinels, every message
                       counted and checked
    views              the plots and `make_panel()`
    _ends              the four channels behind one send/receive interface (used by throughput)
    common             `started` (children that always stop), `SpanLog`, `Table`, sizes and rates;
                       (the measured demos start children with `helpers.runners.ProcessGroup`)

    kernel ──Process(target=helpers function, args=(queue, ...))──> child
       ▲                                                              │
       └──────────── pickled bytes through a pipe, or pages of shared memory ◄┘
"""

import importlib
from typing import Any

from helpers.course import preload_in_forkserver

# The modules whose functions run in this chapter's children: a fork server started after this
# import has them (and numpy) loaded already, so each forkserver child starts without importing.
preload_in_forkserver(*(f"{__name__}.{m}" for m in (
    "common", "_ends", "channels", "producer_consumer", "shared", "throughput", "visibility")))

# Each public name and the module that defines it. Imported on first use (PEP 562): a child
# process unpickling `helpers.chapters.ch02_ipc.channels.echo` imports this package first, and
# should not pay for matplotlib and ipywidgets, which only the views need.
_WHERE = {
    "channels": None, "common": None, "producer_consumer": None, "shared": None,
    "throughput": None, "views": None, "visibility": None,
    "pickle_failures": "channels", "pickling_costs": "channels", "queue_anatomy": "channels",
    "round_trips": "channels", "run_feeder_error": "channels",
    "SIZE_NAMES": "common", "Table": "common", "format_bytes": "common",
    "format_rate": "common",
    "parse_size": "common", "started": "common",
    "PipelineRun": "producer_consumer", "run_pipeline": "producer_consumer",
    "access_costs": "shared", "leak_warning": "shared", "per_mib_costs": "shared",
    "share_array_demo": "shared",
    "CHANNELS": "throughput", "SWEEP_SIZES": "throughput", "Sweep": "throughput",
    "TransferRun": "throughput", "measure_memcpy": "throughput", "ring_slots": "throughput",
    "sweep": "throughput", "transfer": "throughput",
    "make_panel": "views", "plot_pipeline": "views", "plot_sweep": "views",
    "plot_transfer": "views",
    "compare_start_methods": "visibility", "copy_on_write": "visibility",
}
__all__ = sorted(_WHERE)

# Names a notebook may use without showing their source (tests/test_code_on_page.py): none of
# them is a lesson of the chapter.
__plumbing__ = (
    "format_rate",  # formats bytes per second as MB/s or GB/s
    "per_mib_costs",  # a table: milliseconds per MiB from throughputs the page already measured
    # The measuring harness: runs one sender and one receiver child over a channel and times
    # them. The channels' own send and receive code (PipeEnd, ring_send, ring_receive) is shown.
    "sweep",
    "transfer",
)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_WHERE[name] or name}")
    value = module if _WHERE[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
