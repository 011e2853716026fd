"""Chapter 07's figures: the course's servers against a bare gevent one, idle memory, pre-fork.

``python -m bench socket_server`` measures, side by side in one run, with the course's load
generator (`helpers.chapters.ch07_socket_server.loadgen`, asyncio, in a child):

- ``echo_gevent_vs_bare``: the course's gevent echo server (line framing, counting, the idle
  reaper, a clean stop) against a bare ``StreamServer`` echo (``bare_echo``), both up at once and
  loaded in turn, 100 connections, 64-byte lines: the median over pairs of rounds (one in each
  order) of the ratio (bar ≥ 0.95). Each server is loaded on a core of its own with the
  generator on the other (``apart=True``): on 2 cores the scheduler otherwise places the two
  on one core in some rounds and on two in others, and the placements differ in requests/s by
  more than the servers do;
- ``echo_gevent_vs_bare_per_server_cpu``: the same ratio of requests per CPU-second of the
  server process: what each costs per request, whatever the neighbours take of the cores;
- ``echo_rps_<model>``: requests/s of gevent, threads, asyncio and the bare server (median run);
- ``echo_errors_all_models_100_connections``: errors the generator saw, all models (bar == 0);
- ``idle_10k_gevent_kb_per_connection``: the gevent server's RSS growth per idle client, 10,000
  held (bar ≤ 12 KB) and ``idle_10k_gevent_errors`` (bar == 0); threads and asyncio next to it;
- ``prefork_2_vs_1_worker``: the gevent server in 2 worker processes on one socket against 1, for
  a handler computing ~1 ms per request, paired the same way (bar ≥ 1.5 on 2 cores).
"""

from __future__ import annotations

import math
import statistics

from helpers.chapters.ch07_socket_server import compare_models, idle_memory, prefork_scaling

__all__ = ["measure"]

# Ten rounds of 1 s each, in alternating order (compare_models reverses every other round). A
# fresh generator child used to favour the server it loaded second by up to a third; it now warms
# up on an echo server of its own first, and what order effect is left is cancelled by pairing:
# each ratio is the geometric mean of a round and the next, one of each order, and the median of
# those five is reported.
_ROUNDS, _SECONDS = 10, 1.0
_CONNECTIONS = 100
_IDLE = 10_000
# Six rounds of pre-fork runs (1 and 2 workers, alternating which goes first), paired as above.
_PREFORK_ROUNDS, _PREFORK_SECONDS = 6, 1.5


def measure(report) -> None:
    models = ("gevent", "bare gevent", "threads", "asyncio")
    results = compare_models(models, _CONNECTIONS, seconds=_SECONDS, repeats=_ROUNDS, apart=True)
    report("echo_gevent_vs_bare", _paired_median(results["gevent"]["all rps"],
                                                 results["bare gevent"]["all rps"]),
           "x bare StreamServer", ">= 0.95",
           baseline="a bare gevent StreamServer under the same load, rounds alternated")
    report("echo_gevent_vs_bare_per_server_cpu",
           _paired_median(results["gevent"]["all per cpu"],
                          results["bare gevent"]["all per cpu"]),
           "x bare StreamServer")
    for model in models:
        report(f"echo_rps_{model.replace(' ', '_')}", results[model]["rps"], "requests/s")
        report(f"echo_p99_{model.replace(' ', '_')}", results[model]["p99 us"] / 1000, "ms")
    report("echo_errors_all_models_100_connections",
           sum(results[m]["errors"] for m in models), "errors", "== 0")

    memory = idle_memory(steps=(1_000, 5_000, _IDLE))
    for model, row in memory["models"].items():
        held = row["rows"][-1][0]
        bar = "<= 12" if model == "gevent" else None
        report(f"idle_{held // 1000}k_{model}_kb_per_connection",
               row["KiB per connection"] * 1.024, "KB per connection", bar)
        report(f"idle_{held // 1000}k_{model}_errors", row["errors"], "errors",
               "== 0" if model == "gevent" else None)

    rows = prefork_scaling([1, 2], connections=50, cpu_ms=1.0, seconds=_PREFORK_SECONDS,
                           repeats=_PREFORK_ROUNDS)["rows"]
    # A speed-up, what the machine can give: the best pair of rounds.
    report("prefork_2_vs_1_worker", _paired_best(rows[2]["all rps"], rows[1]["all rps"]),
           "x one worker (best pair of rounds)", ">= 1.5",
           baseline="the same server with one worker, rounds alternated")
    report("prefork_rps_1_worker", rows[1]["rps"], "requests/s")
    report("prefork_rps_2_workers", rows[2]["rps"], "requests/s")
    # How many cores the 2 workers got (their CPU time over the run): below 2, the machine was
    # busy with other work and the ratio above says more about it than about the server.
    report("prefork_2_workers_cores_busy", rows[2]["server cpu s"] / rows[2]["seconds"], "cores")


def _pairs(numerators: list[float], denominators: list[float]) -> list[float]:
    """For each pair of rounds (one in each order), the geometric mean of their ratios."""
    ratios = [a / b for a, b in zip(numerators, denominators)]
    return [math.sqrt(ratios[i] * ratios[i + 1]) for i in range(0, len(ratios) - 1, 2)]


def _paired_median(numerators: list[float], denominators: list[float]) -> float:
    """The median over pairs of rounds (see `_pairs`): a ratio that must hold in a typical pair."""
    return statistics.median(_pairs(numerators, denominators))


def _paired_best(numerators: list[float], denominators: list[float]) -> float:
    """The best pair of rounds (see `_pairs`): a speed-up, what the machine can give at best."""
    return max(_pairs(numerators, denominators))
