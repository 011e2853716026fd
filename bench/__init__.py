"""`make bench`: the course's figures, measured side by side in one run, each against its bar.

The module protocol. Each topic module here (``bench/<topic>.py``, no leading underscore) has a
function ``measure(report)`` that calls, once per figure::

    report(name, value, unit, bar=None, *, baseline=None)

- `name`: unique in the whole run (a name reported twice is a MISSED figure);
- `value`: a number; a ratio's `unit` says what it divides by (``"x untraced"``);
- `bar`: None for a figure shown for information, or one of ``">= 1.85"``, ``"<= 1.3"``,
  ``"> 1"``, ``"< 0.4"``, ``"== 0"``, ``"!= 0"`` or an inclusive range ``"0.8..1.2"``. Bars are
  stated where the figure is measured and checked in one place (``bench/__main__.py``);
- `baseline`: what the figure was measured against in the same run, in words ("serial, the same
  tasks, interleaved") — required with a bar on a ratio (a unit starting with ``x``), None for an
  absolute bar (seconds, a count). A speed-up, something the machine *can* do, is the best of
  several rounds in the run; a cost or a ratio that must stay small is a median.

``python -m bench`` runs every module — foundation, processes, pools, coroutines, ipc, locks,
crawler, socket_server, choosing, dask, cells (chapters 06 and 07 run cell by cell at reader
defaults), then any other — and prints a line per figure as it comes::

    bench greenlet_trace_vs_noop_floor: 1.11 x no-op tracer  <= 1.15  ok

then the table of all figures (name, value, unit, bar, margin, ``ok``/``MISSED``), and writes
``bench-results.json``: the machine (logical, physical and usable cores, the affinity mask, Python,
platform, gevent and greenlet), the load average before and after and its mean over the run, and
every figure with its bar and verdict, and under ``"bars"`` each bar's margin (see
``bench/__main__.py``), whether it was met and its baseline. A module that raises is one MISSED
row with its error; the other modules still run.

The exit code is 1 when a bar is missed on an idle machine, else 0. "Idle" means the 1-minute load
average, sampled every few seconds over the whole run, stayed on average under the number of cores
this process may use (the affinity mask); the bench itself never runs more busy processes than that.
On a busy machine the run says so and exits 0: its figures measure the neighbours.
``python -m bench coroutines pools`` runs some modules only; ``--output PATH`` writes elsewhere.
"""
