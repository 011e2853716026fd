"""The names of the chapter's server models, in the one module every other one reads them from.

    models ──► books (a book checks the model it records) ──► servers (runs each model)
                                                               ──► prefork, demos, memory, views
"""

from __future__ import annotations

__all__ = ["MODELS", "SOCKETSERVER_MODELS"]

MODELS = ("gevent", "threads", "asyncio")  # the three compared under load
SOCKETSERVER_MODELS = ("plain", "threading", "forking")  # the standard library's own three
