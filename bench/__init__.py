"""`make bench`: the course's figures, measured side by side in one run (not tests).

Each topic module here (``bench/<topic>.py``, no leading underscore) has a function
``measure(report)`` that calls ``report(name, value, unit, bar=None)`` once per figure. A ratio's
unit says what it divides by (``"x untraced"``). `python -m bench` runs every module in a fixed
order, prints one line per figure::

    bench greenlet_trace_overhead: 1.21 x untraced (bar <= 1.3)

and writes all figures to ``bench-results.json``. ``python -m bench coroutines`` runs one module.
"""
