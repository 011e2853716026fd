"""Cores & Coroutines: the tested helpers behind the course notebooks.

Chapters import what they need from the topic modules (``helpers.timeline``, ``helpers.workloads``,
``helpers.widgets``, ``helpers.exercises``, ``helpers.course`` and one module per chapter topic).
Importing this package is cheap and changes no global state (no matplotlib backend, no patching).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
