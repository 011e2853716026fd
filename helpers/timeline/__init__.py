"""The timeline engine: record what every process, thread and greenlet did, then draw it.

Data flow::

    worker (process / thread / greenlet)         the notebook kernel
    ------------------------------------         -------------------
    Recorder / GreenletRecorder / TaskRecorder    Trace  ──> plot_timeline(trace, ax)
      records spans in a local list                 ▲     ──> to_chrome_trace(trace, path)
      (no per-event messages)                       │     ──> trace.overlap_ns(a, b), busy_ns(...)
    Trace (events + clock pair) ──pickled once──────┘

Every span is an `Event` (lane, label, kind, start_ns, end_ns, pid, cpu) timed with
`time.perf_counter_ns()`, one system-wide clock, so spans from different processes line up.
"""

from __future__ import annotations

import importlib

# typing.TYPE_CHECKING without importing typing, which a spawned worker would otherwise pay for
# (type checkers read this name as True).
TYPE_CHECKING = False

# Every name is loaded from its module on first use: a spawned child that only asks which core it
# is on (`current_cpu`) loads none of the rest; recorders load the events, and drawing, export and
# the greenlet tracer (numpy, json, greenlet) load only where they are used.
_LAZY = {"KINDS": "_events", "Event": "_events", "Trace": "_events", "clock_pair": "_events",
         "Recorder": "_record", "Traced": "_record", "TracedResult": "_record",
         "process_lane": "_record", "current_cpu": "_cpu",
         "to_chrome_trace": "_chrome", "GreenletRecorder": "_greenlets", "KIND_COLORS": "_plot",
         "MODEL_COLORS": "_plot", "model_color": "_plot", "TimelineLayout": "_plot",
         "plot_timeline": "_plot", "TaskRecorder": "_asyncio"}

__all__ = [
    "KINDS",
    "KIND_COLORS",
    "MODEL_COLORS",
    "Event",
    "GreenletRecorder",
    "Recorder",
    "TaskRecorder",
    "TimelineLayout",
    "Trace",
    "Traced",
    "TracedResult",
    "clock_pair",
    "current_cpu",
    "model_color",
    "plot_timeline",
    "process_lane",
    "to_chrome_trace",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from ._asyncio import TaskRecorder  # noqa: F401
    from ._chrome import to_chrome_trace  # noqa: F401
    from ._cpu import current_cpu  # noqa: F401
    from ._events import KINDS, Event, Trace, clock_pair  # noqa: F401
    from ._greenlets import GreenletRecorder  # noqa: F401
    from ._plot import (  # noqa: F401
        KIND_COLORS,
        MODEL_COLORS,
        TimelineLayout,
        model_color,
        plot_timeline,
    )
    from ._record import Recorder, Traced, TracedResult, process_lane  # noqa: F401
