"""The chapter's measurements, run from the kernel: servers in children, clients bounded.

Every function here starts what it needs, measures, and stops everything before it returns
(``finally``: an error or a kernel interrupt kills the children instead)::

    one_client_at_a_time(models)  socketserver's plain / threading / forking: a second client
                                  waits on the plain one, measured from the client side
    compare_models(models, ...)   every server up at once, one load generator child loads each
                                  in turn: requests/s, p50/p99 latency, errors
    prefork_scaling(workers)      the gevent server in 1..N processes on one socket, CPU-bound
                                  handler: requests/s against N, and who served which client
    blocking_handler()            a handler calling plain time.sleep: gevent unpatched (one client
                                  at a time), patched (all at once), threads
    misbehaving_clients(model)    silent, half-a-line and leave-mid-reply clients beside a good
                                  one: the server reclaims them and keeps answering
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...course import (
    LOOPBACK,
    check_choice,
    check_float,
    check_int,
    check_loopback_host,
    usable_cores,
)
from ...timeline import Event, Trace
from . import handle as _handle
from .bare import serve_bare
from .loadgen import MAX_ROUNDS, bad_clients, check_load, load
from .prefork import MAX_WORKERS, start_server, summarize
from .servers import MODELS, SOCKETSERVER_MODELS

__all__ = ["LOADED_MODELS", "blocking_handler", "compare_models", "load_port",
           "misbehaving_clients", "one_client_at_a_time", "prefork_scaling"]

LOADED_MODELS = (*MODELS, "bare gevent")  # what compare_models can load
# Rounds of a comparison: 20 of 30 s for 4 models would already be 40 minutes.
MAX_REPEATS = 20
_HOST = LOOPBACK  # every server here runs on this machine, reached by loopback


def _start(model: str, **options: Any) -> _handle.ServerHandle:
    if model == "bare gevent":
        return _handle.start(serve_bare, _HOST, 0)
    return start_server(model, **options)


def _share(connections: int, workers: int, model: str) -> int | None:
    """Each pre-fork gevent worker's cap: its share of the clients (the rest wait for a slot)."""
    return -(-connections // workers) if workers > 1 and model == "gevent" else None


def _check_models(models: Sequence[str], choices: tuple[str, ...]) -> None:
    if isinstance(models, str) or not models:
        raise ValueError(f"models must be a non-empty list drawn from {choices}, got {models!r}")
    for model in models:
        check_choice("models", model, choices)


def compare_models(models: Sequence[str] = MODELS, connections: int = 100, rounds: int = 100_000,
                   size: int = 64, seconds: float = 1.0, repeats: int = 1,
                   workers: int = 1, apart: bool = False) -> dict[str, Any]:
    """Load each model's server with the same generator in one run; figures by model.

    With ``repeats`` > 1 the models are loaded in turn that many times (every other time in
    reverse order) and each model keeps its median run (by requests/s): a noisy neighbour then
    hurts every model alike. ``all rps`` lists every run's figure, in round order, and
    ``all per cpu`` its requests per CPU-second of the server's processes. ``apart`` loads
    each server on a core of its own, the generator on another (Linux; see `cores_apart`), so
    that the scheduler's placement is the same for every model and every round.
    """
    _check_models(models, LOADED_MODELS)
    check_load(connections, rounds, size, seconds)
    check_int("repeats", repeats, 1, MAX_REPEATS)
    check_int("workers", workers, 1, MAX_WORKERS)
    if not isinstance(apart, bool):
        raise TypeError(f"apart must be True or False, got {apart!r}")
    options = {"workers": workers, "connections_hint": connections + 200}
    return _load_each({model: (model, {**options, "worker_connections":
                                       _share(connections, workers, model)})
                       for model in models}, connections, rounds, size, seconds, repeats, apart)


def _load_each(plans: dict[Any, tuple[str, dict[str, Any]]], connections: int, rounds: int,
               size: int, seconds: float, repeats: int,
               apart: bool = False) -> dict[Any, dict[str, Any]]:
    """Start every planned server at once, load each in turn from one generator child, stop all.

    ``plans`` maps a name to (model, start_server options). Idle servers use no CPU, so one
    running while another is loaded does not disturb it; one generator child for all of them
    saves a process start per server. Each round's child first warms up for a second on an echo
    server of its own (`loadgen.load` with ``warm_up``): a cold generator made the first server
    it loaded look a third slower than the rest.
    """
    servers: dict[Any, _handle.ServerHandle] = {}
    results: dict[Any, dict[str, Any]] = {}
    try:
        for name, (model, options) in plans.items():
            servers[name] = _start(model, **options)
        runs: dict[Any, list[dict[str, Any]]] = {name: [] for name in plans}
        for repeat in range(repeats):
            # Every other round in reverse order: no server always goes first (or last).
            order = list(plans) if repeat % 2 == 0 else list(reversed(plans))
            targets = [(name, _HOST, servers[name].info["port"], servers[name].info["pids"])
                       for name in order]
            budget = len(plans) * (seconds + 5) + 15  # 5 s of it for the warm-up
            for name, figures in _handle.call(load, targets, connections, rounds, size,
                                              seconds, True, apart,
                                              timeout=budget).items():
                runs[name].append(figures)
        for name in plans:
            ordered = sorted(runs[name], key=lambda r: r["rps"])
            results[name] = ordered[len(ordered) // 2]
            results[name]["all rps"] = [r["rps"] for r in runs[name]]
            results[name]["all per cpu"] = [r["requests per server cpu s"] for r in runs[name]]
            books = servers[name].stop()
            results[name]["books"] = books["workers"]
            results[name]["server"] = summarize(books)
    finally:  # an error or an interrupt: nothing stays running
        for server in servers.values():
            if server.running:
                server.kill()
    return results


def load_port(port: int, connections: int = 100, size: int = 64, seconds: float = 2.0,
              host: str = _HOST) -> dict[str, Any]:
    """Load one running echo server (say, one a terminal started) with the course's generator."""
    check_int("port", port, 1, 65535)
    check_loopback_host("host", host)  # "" would load nothing and report 0 requests/s
    check_load(connections, 1, size, seconds)
    return _handle.call(load, [("server", host, port)], connections, MAX_ROUNDS, size, seconds,
                        timeout=seconds + 20)["server"]


def one_client_at_a_time(models: Sequence[str] = SOCKETSERVER_MODELS,
                         hold: float = 1.0) -> dict[str, Any]:
    """Client A connects and stays `hold` s; client B connects just after: how long does B wait?"""
    _check_models(models, SOCKETSERVER_MODELS + MODELS)
    hold = check_float("hold", hold, 0.05, 10.0)
    results: dict[str, Any] = {}
    trace = Trace()
    base = None
    for model in models:
        server = start_server(model, handler="whoami")
        try:
            row, events = _two_clients(server.info["port"], hold, model)
        finally:
            server.stop()
        results[model] = row
        # Each model's pair is drawn from the same time zero (its client A's connect), one pair
        # under the other, so the waits compare at a glance.
        base = events[0].start_ns if base is None else base
        shift = base - events[0].start_ns
        trace.extend(replace(e, start_ns=e.start_ns + shift, end_ns=e.end_ns + shift)
                     for e in events)
    return {"models": results, "trace": trace}


def _two_clients(port: int, hold: float, model: str) -> tuple[dict[str, Any], list[Event]]:
    def ask(sock: socket.socket) -> str:
        sock.sendall(b"who are you?\n")
        return sock.recv(200).decode().strip()

    a_start = time.perf_counter_ns()
    a = socket.create_connection((_HOST, port), timeout=hold + 5)
    who_a = ask(a)
    closer = threading.Timer(hold, a.close)  # A leaves after `hold` s, whatever B does
    closer.start()
    try:
        b_start = time.perf_counter_ns()
        with socket.create_connection((_HOST, port), timeout=hold + 5) as b:
            who_b = ask(b)
            b_served = time.perf_counter_ns()
    finally:
        closer.join(hold + 5)
        a.close()
    lane_a, lane_b = f"{model}: client A", f"{model}: client B"
    events = [Event(lane_a, who_a, "run", a_start, a_start + int(hold * 1e9)),
              Event(lane_b, "waiting for a reply", "wait", b_start, b_served),
              Event(lane_b, who_b, "run", b_served, b_served + 1_000_000)]
    return {"B waited s": (b_served - b_start) / 1e9, "A": who_a, "B": who_b}, events


def prefork_scaling(workers: Sequence[int] | None = None, connections: int = 50,
                    cpu_ms: float = 1.0, seconds: float = 1.0, repeats: int = 1,
                    start_method: str | None = None) -> dict[str, Any]:
    """The gevent server with a CPU-bound handler in N processes on one socket, N = 1..cores."""
    if workers is None:
        workers = list(range(1, usable_cores() + 1))
    if isinstance(workers, str) or not workers:
        raise ValueError(f"workers must be a non-empty list of process counts, got {workers!r}")
    for count in workers:
        check_int("workers", count, 1, MAX_WORKERS)
    check_load(connections, 1, 2, seconds)
    cpu_ms = check_float("cpu_ms", cpu_ms, 0.01, 100.0)
    check_int("repeats", repeats, 1, MAX_REPEATS)
    plans = {count: ("gevent", {"workers": count, "handler": "cpu", "cpu_ms": cpu_ms,
                                "start_method": start_method,
                                "connections_hint": connections + 200,
                                "worker_connections": _share(connections, count, "gevent")})
             for count in workers}
    rows = _load_each(plans, connections, MAX_ROUNDS, 64, seconds, repeats)
    return {"rows": rows, "cores": usable_cores(), "cpu_ms": cpu_ms}


def blocking_handler(blocking_ms: float = 10.0, connections: int = 20,
                     seconds: float = 1.0) -> dict[str, Any]:
    """A handler that calls plain ``time.sleep``: gevent unpatched, gevent patched, threads."""
    blocking_ms = check_float("blocking_ms", blocking_ms, 0.1, 1000.0)
    check_load(connections, 1, 2, seconds)
    common = {"handler": "blocking", "blocking_ms": blocking_ms}
    plans = {"gevent, not patched": ("gevent", {**common, "patch": False}),
             "gevent, patched": ("gevent", {**common, "patch": True}),
             "threads": ("threads", common)}
    return _load_each(plans, connections, MAX_ROUNDS, 64, seconds, 1)


def misbehaving_clients(model: str = "gevent", idle_timeout: float = 0.5,
                        watch: float = 1.5, big: int = 2_000_000) -> dict[str, Any]:
    """Bad clients beside a good one for `watch` s; the server's idle timeout reclaims them."""
    check_choice("model", model, MODELS)
    idle_timeout = check_float("idle_timeout", idle_timeout, 0.1, 10.0)
    watch = check_float("watch", watch, 0.2, 30.0)
    check_int("big", big, 1, 4_000_000)
    server = start_server(model, idle_timeout=idle_timeout)
    try:
        clients = _handle.call(bad_clients, _HOST, server.info["port"], watch, big,
                               timeout=watch + 20)
    except BaseException:
        server.kill()
        raise
    books = server.stop()
    clients["server"] = summarize(books)
    return clients
