"""Chapter 07 measurements: the load generator, idle memory, bad clients, pre-fork scaling."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys

import psutil
import pytest

from helpers.chapters.ch07_socket_server import (
    compare_models,
    idle_memory,
    limits,
    load_port,
    memory,
    misbehaving_clients,
    prefork_scaling,
)
from helpers.chapters.ch07_socket_server.placement import cores_apart


def test_every_model_and_the_bare_server_take_100_connections_without_an_error():
    results = compare_models(("gevent", "threads", "asyncio", "bare gevent"), connections=100,
                             seconds=0.3)
    for model, figures in results.items():
        assert figures["errors"] == 0, (model, figures["error kinds"])
        assert figures["requests"] >= 100  # every connection got at least one answer
        assert figures["p50 us"] <= figures["p99 us"] <= figures["max us"]
    # the server counted the lines the generator sent (each answered line is one request)
    assert results["gevent"]["server"]["lines"] >= results["gevent"]["requests"]
    assert results["gevent"]["server"]["accepted"] == 100


def test_rounds_bound_the_load():
    results = compare_models(("asyncio",), connections=10, rounds=7, seconds=5.0)
    assert results["asyncio"]["requests"] == 70
    assert results["asyncio"]["seconds"] < 5.0


def test_a_port_nobody_listens_on_is_errors_not_a_crash():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    figures = load_port(port, connections=5, seconds=0.2)
    assert figures["errors"] == 5 and figures["requests"] == 0 and math.isnan(figures["p50 us"])


def test_idle_clients_grow_the_server_by_kilobytes_each():
    result = idle_memory(steps=(200, 600))
    assert result["note"] == ""
    for model, row in result["models"].items():
        assert row["errors"] == 0, (model, row["error kinds"])
        assert [c for c, _ in row["rows"]] == [0, 200, 600]
        assert 0.5 < row["KiB per connection"] < 500, model


def test_a_low_open_file_limit_shrinks_the_run_and_says_so(monkeypatch):
    monkeypatch.setattr(memory, "open_files_limit", lambda: (1024, 500))
    result = idle_memory(models=("gevent",), steps=(100, 250, 1000))
    assert result["steps"] == [100, 250]
    assert "at most 500 open files" in result["note"]
    assert result["models"]["gevent"]["rows"][-1][0] == 250


def test_raising_the_open_file_limit_past_the_hard_limit_says_what_to_do():
    soft, hard = limits.open_files_limit()
    with pytest.raises(ValueError, match="hard RLIMIT_NOFILE"):
        limits.raise_open_files(hard + 1)


def test_bad_clients_are_reclaimed_while_a_good_one_keeps_being_answered():
    result = misbehaving_clients("gevent", idle_timeout=0.3, watch=1.2)
    assert result["good client"]["failures"] == 0 and result["good client"]["requests"] > 10
    assert 0.25 < result["silent closed after s"] < 1.0
    assert result["half line closed after s"] is not None
    outcomes = result["server"]["outcomes"]
    assert outcomes.get("reclaimed: idle") == 1
    assert outcomes.get("reclaimed: half a line") == 1
    assert outcomes.get("reset by client") == 1  # the one that left mid-reply


@pytest.mark.parametrize("model", ["threads", "asyncio"])
def test_the_other_models_reclaim_bad_clients_too(model):
    result = misbehaving_clients(model, idle_timeout=0.3, watch=1.0)
    assert result["good client"]["failures"] == 0
    assert result["server"]["outcomes"].get("reclaimed: idle") == 1


def test_prefork_scaling_reports_each_worker_count_and_who_served_whom():
    result = prefork_scaling([1, 2], connections=20, cpu_ms=0.5, seconds=0.3)
    assert set(result["rows"]) == {1, 2}
    for count, row in result["rows"].items():
        assert row["errors"] == 0
        assert len(row["books"]) == count
        assert sum(len(book["spans"]) for book in row["books"]) == 20


@pytest.mark.parametrize(("call", "message"), [
    (lambda: compare_models(("nginx",)), "models must be one of"),
    (lambda: compare_models(connections=0), "connections must be an integer from 1"),
    (lambda: compare_models(size=1), "size must be an integer from 2"),
    (lambda: compare_models(seconds=100), "seconds must be a number from"),
    (lambda: idle_memory(steps=(500, 100)), "steps must be increasing"),
    (lambda: misbehaving_clients(idle_timeout=0), "idle_timeout must be a number"),
    (lambda: prefork_scaling([0]), "workers must be an integer from 1"),
    (lambda: compare_models([]), "models must be a non-empty list"),
    (lambda: idle_memory(models=[]), "models must be a non-empty list"),
    (lambda: prefork_scaling([]), "workers must be a non-empty list"),
    (lambda: limits.raise_open_files(-1), "needed must be an integer from 1"),
    (lambda: limits.raise_open_files(2.5), "needed must be an integer from 1"),
])
def test_bad_parameters_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_an_interrupt_during_a_load_kills_every_server_it_started(monkeypatch):
    from helpers.chapters.ch07_socket_server import demos

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demos._handle, "call", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare_models(("gevent", "threads"), connections=5, seconds=0.1)
    # the autouse no_leftovers fixture fails this test if a server child is still there


def test_worker_connections_shares_the_clients_between_prefork_workers():
    result = prefork_scaling([2], connections=20, cpu_ms=0.2, seconds=0.3)
    assert sorted(result["rows"][2]["server"]["connections per pid"].values()) == [10, 10]


def test_a_blocking_call_serialises_an_unpatched_gevent_server_and_not_a_patched_one():
    from helpers.chapters.ch07_socket_server import blocking_handler

    result = blocking_handler(blocking_ms=5.0, connections=10, seconds=0.4)
    assert all(row["errors"] == 0 for row in result.values())
    unpatched, patched = result["gevent, not patched"]["rps"], result["gevent, patched"]["rps"]
    assert unpatched <= 1.3 * 1000 / 5  # one 5 ms sleep at a time, whatever the clients
    assert patched > 3 * unpatched  # ten sleeps at once


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two usable cores")
def test_cores_apart_pins_every_server_thread_away_from_the_generator_then_restores():
    usable = os.sched_getaffinity(0)
    # A stand-in server with two threads (the main one and one started at once).
    code = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); " \
           "print('up', flush=True); time.sleep(30)"
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "up"
        threads = [t.id for t in psutil.Process(server.pid).threads()]
        assert len(threads) == 2
        with cores_apart([server.pid]) as cores:
            generator_core, server_core = cores
            assert generator_core != server_core
            assert os.sched_getaffinity(0) == {generator_core}
            assert [os.sched_getaffinity(t) for t in threads] == [{server_core}] * 2
        assert os.sched_getaffinity(0) == usable
        assert [os.sched_getaffinity(t) for t in threads] == [usable] * 2
    finally:
        server.kill()
        server.wait(10)
        server.stdout.close()


def test_a_comparison_with_the_servers_apart_measures_every_model():
    results = compare_models(("gevent", "bare gevent"), connections=20, seconds=0.3, apart=True)
    for figures in results.values():
        assert figures["errors"] == 0 and figures["requests"] >= 20
        assert figures["server cpu s"] > 0
    with pytest.raises(TypeError, match="apart"):
        compare_models(("gevent",), apart="yes")
