"""A server's book: who is connected now, and what happened to everyone who was.

Every model in `servers` keeps one `Book` per process. A handler calls `Book.opened` when a client
connects and `Book.closed` when it goes; the reaper calls `Book.sweep`; a stop calls
`Book.close_all`. `Book.report` is what the server sends back to the kernel::

    {"model", "pid", "accepted", "lines", "peak_open", "still_open", "outcomes",
     "spans": [(connection id, opened ns, closed ns, lines, outcome), ...], "start_ns", "stop_ns"}
"""

from __future__ import annotations

import itertools
import os
import time

from ...course import check_choice, check_int
from .models import MODELS, SOCKETSERVER_MODELS

__all__ = ["CLOSED_BY_CLIENT", "MAX_CONNECTION_ID", "SWEEPS_PER_TIMEOUT", "Book", "Conn",
           "close_quietly"]

# Spans sent back per process: 10,000 idle connections plus room (all are counted).
_MAX_SPANS = 20_000
# How often the reaper looks: a quarter of the idle timeout. A client is reclaimed at the fifth
# look that finds it silent: between 1 and 1.25 idle timeouts after its last byte.
SWEEPS_PER_TIMEOUT = 4
CLOSED_BY_CLIENT = "closed by client"  # every connection's outcome until something else happens
# Connection ids count one server process's clients, and a server lives at most an hour: even
# 100,000 connections a second for that hour stay below this.
MAX_CONNECTION_ID = 10**9


class Conn:
    """One client: when it came, what it sent, how it ended, and how to close it (``closer``)."""

    __slots__ = ("id", "opened_ns", "received", "seen", "idle", "lines", "outcome", "closer")

    def __init__(self, conn_id: int, closer) -> None:
        check_int("conn_id", conn_id, 1, MAX_CONNECTION_ID)
        self.id, self.closer = conn_id, closer
        self.opened_ns = time.perf_counter_ns()
        self.received = self.seen = self.idle = self.lines = 0
        self.outcome = CLOSED_BY_CLIENT


class Book:
    """Who is connected, and what happened to everyone who was.

    Thread-safe without a lock: a dict insert or pop, a list append and ``next()`` on a counter
    are each atomic in CPython. (A lock here was a convoy: 10,000 handler threads woken at once
    by their clients leaving queued on it, and the main thread starved behind them.)
    """

    def __init__(self, model: str, settings) -> None:  # settings: servers.Settings
        check_choice("model", model, MODELS + SOCKETSERVER_MODELS)
        self.model, self.settings = model, settings
        self.open: dict[int, Conn] = {}
        self.spans: list[tuple[int, int, int, int, str]] = []
        self._ids = itertools.count(1)
        self.pid = os.getpid()
        self.start_ns = time.perf_counter_ns()

    def opened(self, closer) -> Conn:
        conn = Conn(next(self._ids), closer)
        self.open[conn.id] = conn
        return conn

    def closed(self, conn: Conn) -> None:
        if self.open.pop(conn.id, None) is not None:
            self.spans.append((conn.id, conn.opened_ns, time.perf_counter_ns(), conn.lines,
                               conn.outcome))

    def sweep(self) -> None:
        """Close every client that sent nothing for the idle timeout (called every interval)."""
        if self.settings.idle_timeout is None:
            return
        for conn in list(self.open.values()):
            activity = conn.received + conn.lines  # the fast path counts only lines
            if activity != conn.seen:
                conn.seen, conn.idle = activity, 0
                continue
            conn.idle += 1
            if conn.idle > SWEEPS_PER_TIMEOUT:
                conn.outcome = "reclaimed: idle" if not activity else "reclaimed: half a line"
                close_quietly(conn.closer)

    def close_all(self, outcome: str) -> None:
        for conn in list(self.open.values()):
            conn.outcome = outcome
            close_quietly(conn.closer)

    def report(self) -> dict:
        spans = list(self.spans)
        still_open = list(self.open.values())
        outcomes: dict[str, int] = {}
        for span in spans:
            outcomes[span[4]] = outcomes.get(span[4], 0) + 1
        return {"model": self.model, "pid": self.pid, "accepted": len(spans) + len(still_open),
                "lines": sum(s[3] for s in spans) + sum(c.lines for c in still_open),
                "peak_open": _peak(spans, still_open), "still_open": len(still_open),
                "outcomes": outcomes, "spans": spans[:_MAX_SPANS], "start_ns": self.start_ns,
                "stop_ns": time.perf_counter_ns()}


def _peak(spans: list[tuple[int, int, int, int, str]], still_open: list[Conn]) -> int:
    """The most clients connected at once: a sweep over every open (+1) and close (-1)."""
    edges = [(s[1], 1) for s in spans] + [(s[2], -1) for s in spans]
    edges += [(c.opened_ns, 1) for c in still_open]
    peak = now = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        now += step
        peak = max(peak, now)
    return peak


def close_quietly(closer) -> None:
    try:
        closer()
    except OSError:
        pass
