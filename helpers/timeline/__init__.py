"""The timeline engine: record what every process, thread and greenlet did, then draw it.

Data flow::

    worker (process / thread / greenlet)         the notebook kernel
    ------------------------------------         -------------------
    Recorder / GreenletRecorder                   Trace  ──> plot_timeline(trace, ax)
      records spans in a local list                 ▲     ──> to_chrome_trace(trace, path)
      (no per-event messages)                       │     ──> trace.overlap_ns(a, b), busy_ns(...)
    Trace (events + clock pair) ──pickled once──────┘

Every span is an `Event` (lane, label, kind, start_ns, end_ns, pid, cpu) timed with
`time.perf_counter_ns()`, one system-wide clock, so spans from different processes line up.
"""

from ._chrome import to_chrome_trace
from ._events import KINDS, Event, Trace
from ._greenlets import GreenletRecorder
from ._plot import KIND_COLORS, TimelineLayout, plot_timeline
from ._record import Recorder, Traced, TracedResult, current_cpu, process_lane

__all__ = [
    "KINDS",
    "KIND_COLORS",
    "Event",
    "GreenletRecorder",
    "Recorder",
    "TimelineLayout",
    "Trace",
    "Traced",
    "TracedResult",
    "current_cpu",
    "plot_timeline",
    "process_lane",
    "to_chrome_trace",
]
