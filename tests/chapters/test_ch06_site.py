"""Chapter 06's local site: deterministic content, every fault as a client sees it, capacity, the
command line, clear errors, and a child process that never outlives its use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import urllib3

from helpers.chapters.ch06_crawler.crawler import fetch_once, links_in
from helpers.chapters.ch06_crawler.site import Site
from helpers.chapters.ch06_crawler.sitemap import FAULTS, SiteSpec, build_sitemap

SITE_MODULE = "helpers.chapters.ch06_crawler.site"


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_the_same_seed_draws_the_same_site_and_another_seed_another():
    spec = SiteSpec(pages=200, distribution="exponential", failure_rate=0.2)
    first, again = build_sitemap(spec), build_sitemap(spec)
    other = build_sitemap(SiteSpec(pages=200, distribution="exponential", failure_rate=0.2,
                                   seed=99))
    assert first.pages == again.pages
    assert first.pages != other.pages
    faults = [p.fault for p in first.pages if p.fault]
    assert set(faults) == set(FAULTS)  # 40 faulty pages of 200 draw every kind
    assert 20 <= len(faults) <= 60
    assert first.pages[0].fault is None  # the start page always answers


def test_without_faults_every_page_is_reachable_and_serial_time_is_the_sum():
    sitemap = build_sitemap(SiteSpec(pages=150, latency=0.02))
    assert set(sitemap.reachable()) == {p.path for p in sitemap.pages}
    assert sitemap.serial_seconds() == pytest.approx(150 * 0.02)
    assert 2 <= sitemap.depth() < 150


def test_a_slow_tail_has_a_few_pages_far_slower_than_the_rest():
    latencies = [p.latency for p in build_sitemap(
        SiteSpec(pages=2000, latency=0.01, distribution="slow tail")).pages]
    slow = [t for t in latencies if t > 0.01]
    assert set(latencies) == {0.01, 0.2}
    assert 0.02 * 2000 <= len(slow) <= 0.09 * 2000


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"pages": 0}, "pages"), ({"latency": -0.1}, "latency"), ({"distribution": "pareto"},
                                                              "distribution"),
    ({"failure_rate": 0.9}, "failure_rate"), ({"capacity": 0}, "capacity"),
    ({"port": 70_000}, "port"), ({"host": "10.0.0.1"}, "host"), ({"lifetime": 0}, "lifetime"),
])
def test_bad_parameters_name_themselves_before_anything_starts(kwargs, name):
    kwargs = {"pages": 10, **kwargs}
    with pytest.raises(ValueError, match=name):
        Site(**kwargs)


def test_a_busy_port_is_a_clear_error_and_leaves_no_process_and_no_files(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the site's folder is made
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"port {port} on 127.0.0.1 is already in use"):
            Site(10, port=port).start()
    assert all(_gone(p.pid) for p in psutil.Process().children(recursive=True)
               if p.pid not in before)
    assert list(tmp_path.iterdir()) == []


def test_every_page_answers_as_its_sitemap_says():
    with Site(40, latency=0.01, failure_rate=0.5, hang=5.0, seed=1) as site:
        http = urllib3.PoolManager()
        pages = site.sitemap.pages
        assert {p.fault for p in pages if p.fault} == set(FAULTS)
        seen = {}
        for page in pages:
            got = [fetch_once(http, site.url + page.path, 0.3) for _ in range(2)]
            seen[page.index] = [outcome for outcome, _ in got]
            if page.fault is None:
                assert links_in(got[0][1]) == [f"/page/{t}" for t in page.links]
                assert len(got[0][1]) == site.spec.size
        served = site.served()
        assert fetch_once(http, site.url + "/page/999", 1.0)[0] == "404"
    expected_client = {"500": "500", "reset": "reset", "hang": "timeout", "404": "404"}
    for page in pages:
        want = [page.outcome(1), page.outcome(2)]
        assert seen[page.index] == [expected_client.get(o, o) for o in want], page
        assert served.outcomes(page.path) == want
    transient = [p for p in pages if p.fails == 1]
    assert transient and all(seen[p.index][1] == "200" for p in transient)
    assert site.report.outcomes("/page/999") == ["404"]  # the final report, written at stop
    assert site.report.requests == served.requests + 1


def test_capacity_bounds_the_requests_the_site_handles_at_once():
    with Site(20, latency=0.2, capacity=5) as site:
        http = urllib3.PoolManager(maxsize=20)
        started = time.perf_counter()
        with ThreadPoolExecutor(20) as pool:
            outcomes = list(pool.map(lambda p: fetch_once(http, site.url + p.path, 5.0)[0],
                                     site.sitemap.pages))
        elapsed = time.perf_counter() - started
        served = site.served()
    assert outcomes == ["200"] * 20
    assert served.peak_in_flight == 5
    assert elapsed >= 4 * 0.2 * 0.9  # 20 requests, 5 at a time: four rounds of 0.2 s


def test_reset_peak_counts_the_most_at_once_afresh():
    with Site(8, latency=0.2, capacity=8) as site:
        http = urllib3.PoolManager(maxsize=8)

        def fetch_all(count):
            with ThreadPoolExecutor(count) as pool:
                return list(pool.map(lambda p: fetch_once(http, site.url + p.path, 5.0)[0],
                                     site.sitemap.pages[:count]))

        assert fetch_all(6) == ["200"] * 6
        assert site.served(reset_peak=True).peak_in_flight == 6  # the report before the reset
        assert site.served().peak_in_flight == 0  # nothing in flight when it was reset
        assert fetch_all(2) == ["200"] * 2
        assert site.served().peak_in_flight == 2
        with pytest.raises(TypeError, match="reset_peak"):
            site.served(reset_peak="yes")
        with pytest.raises(ValueError, match="timeout"):
            site.served(timeout=0)


def test_the_site_stops_when_the_block_raises_and_when_asked_twice():
    site = Site(10)
    with pytest.raises(KeyboardInterrupt), site:
        pid = site.pid
        raise KeyboardInterrupt
    assert _gone(pid)
    assert site.stop() is site.report  # a second stop is harmless
    with pytest.raises(RuntimeError, match="not running"):
        _ = site.url


def test_an_interrupt_while_the_site_starts_stops_its_child(monkeypatch):
    started = []

    def interrupted(self, child):
        started.append(self.pid)
        raise KeyboardInterrupt  # the Interrupt button, while waiting for the child to listen

    monkeypatch.setattr(Site, "_wait_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Site(10).start()
    assert started and _gone(started[0])


def test_a_site_dropped_without_stop_is_killed_when_collected():
    import gc

    site = Site(10).start()
    pid = site.pid
    del site
    gc.collect()
    assert _gone(pid)


def test_the_site_stops_by_itself_when_the_process_that_started_it_dies(tmp_path):
    script = ("import os, sys\nfrom helpers.chapters.ch06_crawler.site import Site\n"
              "site = Site(10).start()\nprint(site.pid, flush=True)\nos._exit(0)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30, check=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert _gone(int(done.stdout.split()[0]), within=5.0)
    assert list(tmp_path.iterdir()) == []  # its log, ready and report files went with it


def test_the_command_line_serves_until_interrupted_and_rejects_bad_values():
    bad = subprocess.run([sys.executable, "-m", SITE_MODULE, "--pages", "0"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "pages must be an integer from 1" in bad.stderr
    assert "Warning" not in bad.stderr  # the module runs once, not as a second copy
    beyond = subprocess.run([sys.executable, "-m", SITE_MODULE, "--host", "0.0.0.0"],
                            capture_output=True, text=True, timeout=30)
    assert beyond.returncode == 2 and "host must be" in beyond.stderr  # loopback only
    proc = subprocess.Popen([sys.executable, "-m", SITE_MODULE, "--port", "0", "--pages", "5"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving 5 pages at http://127.0.0.1:")
        url = line.split()[4].rstrip("/")
        assert fetch_once(urllib3.PoolManager(), url + "/page/0", 5.0)[0] == "200"
        proc.send_signal(signal.SIGINT)  # Ctrl-C in a terminal
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
