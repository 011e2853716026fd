"""Cores & Coroutines: the tested helpers behind the course notebooks.

Four layers, each importing only from the ones below it (``tests/test_layers.py`` checks it)::

    helpers.exercises          the self-checks of the exercises, one module per chapter
    helpers.chapters.chNN_*    each chapter's demos, views and panel; no chapter imports another
    helpers.runners            start workers (threads, processes, pools, greenlets, Dask), stop
                               them, and return one `Run`; the cleanup seam is here
    helpers.timeline           record events, build a `Trace`, draw it on an `ax`
    (beside them: ``course`` — parameters, checks, start methods; ``workloads``; ``widgets``;
    ``source`` — show the code a cell teaches)

A notebook imports what it needs from these. Importing this package is cheap and changes no
global state (no matplotlib backend, no patching).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
