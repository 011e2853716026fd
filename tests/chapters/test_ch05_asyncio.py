"""Chapter 05d (asyncio): the helpers the notebook shows and the ones behind its panel and check.

Each test asserts what the part claims, read from what ran: tasks that wait overlap (from the
recorded steps), a semaphore's bound is the peak the site measured, a computation in the loop
makes a ticker late and one in a thread much less (within one test), a failure in a TaskGroup
leaves no task pending, and the exercise's check tells right from wrong.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time

import pytest
from _notebooks import solution
from _timing import skip_if_busy
from matplotlib.figure import Figure

from helpers.chapters import ch05_coroutines as co
from helpers.chapters.ch05_coroutines import (
    capture_slow_callbacks,
    crawl_pages,
    fetch_page,
    local_site,
    plot_tasks,
    run_in_thread,
    task_demo,
)
from helpers.exercises import check
from helpers.timeline import TaskRecorder
from helpers.workloads import cpu_task, iterations_for

pytestmark = pytest.mark.timeout(90)
# crawl_pages and the exercise's solution use asyncio.TaskGroup, new in Python 3.11.
needs_taskgroup = pytest.mark.skipif(sys.version_info < (3, 11), reason="TaskGroup: Python 3.11+")


def _lifespans(trace) -> dict[str, tuple[int, int]]:
    spans: dict[str, list] = {}
    for event in trace.events:
        if event.kind == "run":
            spans.setdefault(event.lane, []).append(event)
    return {lane: (min(e.start_ns for e in es), max(e.end_ns for e in es))
            for lane, es in spans.items()}


def _pending_besides_me() -> list[asyncio.Task]:
    me = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not me and not t.done()]


def test_waiting_tasks_overlap_on_the_recording():
    async def main():
        async def chore(seconds):
            await asyncio.sleep(seconds)

        async with TaskRecorder() as recorder:
            tasks = [asyncio.create_task(chore(s), name=f"chore {s}") for s in (0.15, 0.1, 0.05)]
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return recorder.recording()

    lives = _lifespans(asyncio.run(main()))
    assert set(lives) == {"chore 0.15", "chore 0.1", "chore 0.05"}
    # Every task started before any ended: they waited at the same time.
    assert max(start for start, _ in lives.values()) < min(end for _, end in lives.values())
    first = min(start for start, _ in lives.values())
    last = max(end for _, end in lives.values())
    assert (last - first) / 1e9 < 0.15 + 0.1 + 0.05  # less than the sum


@needs_taskgroup
def test_crawl_finds_every_page_and_the_semaphore_is_the_measured_peak():
    with local_site(40, 0.05) as site:
        site.served(reset_peak=True)
        statuses = asyncio.run(crawl_pages(site.start_url, 5))
        served = site.served()
    assert len(statuses) == 40 and set(statuses.values()) == {200}
    assert served.peak_in_flight == 5  # never more than the bound, and the bound was reached


def test_fetch_page_reads_status_and_body_and_stays_local():
    with local_site(3, 0.0) as site:
        status, body = asyncio.run(fetch_page(site.start_url))
        missing, _ = asyncio.run(fetch_page(site.url + "/page/999"))
    assert status == 200 and b'href="/page/' in body
    assert missing == 404
    with pytest.raises(ValueError, match="url"):
        asyncio.run(fetch_page("http://example.com/"))
    with pytest.raises(ValueError, match="timeout"):
        asyncio.run(fetch_page("http://127.0.0.1:1/", timeout=-1))


@needs_taskgroup
def test_a_failed_request_cancels_the_crawl_and_leaves_no_task():
    async def main():
        with socket_free_port() as port:  # nothing listens there: the first fetch is refused
            try:
                await crawl_pages(f"http://127.0.0.1:{port}/page/0", 3)
            except BaseException as error:  # noqa: BLE001 - inspected below
                return error, _pending_besides_me()
        return None, _pending_besides_me()

    error, pending = asyncio.run(main())
    assert type(error).__name__ == "ExceptionGroup"  # the builtin, new in 3.11
    assert any(isinstance(e, ConnectionError) for e in error.exceptions)
    assert pending == []


class socket_free_port:
    """A port on 127.0.0.1 that was free a moment ago (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        return None


async def _ticker_lateness(compute) -> float:
    """The worst lateness (s) of a 10 ms ticker while `compute()` runs beside it."""
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        due = loop.time()
        while not stop.is_set():
            due += 0.01
            await asyncio.sleep(max(0.0, due - loop.time()))
            lateness.append(loop.time() - due)

    clock = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0.03)
        await asyncio.wait_for(compute(), 30)
        await asyncio.sleep(0.03)
    finally:
        stop.set()
        clock.cancel()
        await asyncio.gather(clock, return_exceptions=True)
    return max(lateness)


def test_a_computation_in_the_loop_makes_the_ticker_late_and_a_thread_much_less():
    total = iterations_for(0.2)

    async def in_the_loop():
        cpu_task(total)

    async def in_a_thread():
        await asyncio.to_thread(cpu_task, total)

    async def main():
        with capture_slow_callbacks(0.05) as slow:
            blocked = await _ticker_lateness(in_the_loop)
        threaded = await _ticker_lateness(in_a_thread)
        return blocked, threaded, slow

    blocked, threaded, slow = asyncio.run(main())
    assert blocked > 0.1  # most of the 0.2 s computation
    assert any("took" in line for line in slow)
    skip_if_busy(blocked / max(threaded, 1e-6), "ticker lateness, loop / thread", at_most=3.0)


def test_capture_slow_callbacks_names_the_task_and_restores_the_loop():
    async def main():
        loop = asyncio.get_running_loop()
        before = (loop.get_debug(), loop.slow_callback_duration,
                  logging.getLogger("asyncio").propagate)

        async def hog():
            time.sleep(0.06)

        with capture_slow_callbacks(0.03) as slow:
            await asyncio.create_task(hog(), name="the hog")
        after = (loop.get_debug(), loop.slow_callback_duration,
                 logging.getLogger("asyncio").propagate)
        return slow, before, after

    slow, before, after = asyncio.run(main())
    assert any("'the hog'" in line and "took" in line for line in slow), slow
    assert before == after
    with pytest.raises(ValueError, match="seconds"):
        with capture_slow_callbacks(0.0):
            pass


def test_task_demo_measures_its_bound_and_the_blocking_task_stops_the_others():
    trace, measured = run_in_thread(task_demo, 6, 2, "in the loop", 0.03, timeout=30)
    assert measured["most at once"] == 2
    assert "blocking" in trace.lanes() and "task 0" in trace.lanes()
    blocking = [e for e in trace.events if e.lane == "blocking" and e.kind == "run"]
    assert max(e.end_ns - e.start_ns for e in blocking) >= 0.03e9  # time.sleep inside one step
    with pytest.raises(ValueError, match="blocking"):
        run_in_thread(task_demo, 2, 2, "sometimes", timeout=5)


def test_run_in_thread_returns_raises_and_cancels_an_overstaying_coroutine():
    async def value(x):
        return x * 2

    async def fails():
        raise KeyError("inside")

    cleaned = []

    async def overstays():
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append(True)

    assert run_in_thread(value, 21) == 42
    with pytest.raises(KeyError):
        run_in_thread(fails)
    with pytest.raises(TimeoutError):
        run_in_thread(overstays, timeout=0.2)
    assert cleaned == [True]
    assert not [t for t in threading.enumerate() if t.name == "cc-asyncio-loop"]


def test_the_panel_and_the_view_draw_a_lane_per_task():
    panel = co.make_panel("asyncio")
    summary = panel.run(tasks=3, limit=2, blocking="to_thread")
    assert "at most 2 at once" in summary
    trace, _ = run_in_thread(task_demo, 3, 3, "none", 0.01, timeout=30)
    artists = plot_tasks({"three": trace}, [Figure().subplots()])
    assert artists
    with pytest.raises(ValueError, match="recordings"):
        plot_tasks({})


@needs_taskgroup
def test_exercise_solution_passes_and_wrong_versions_are_told_why(tmp_path):
    assert not check("05.6", ...).wrong  # not answered: no error, no ✗
    assert check("05.6", solution("05d_asyncio.ipynb", "def fetch_all", tmp_path))
    starting = tmp_path / "starting.py"
    starting.write_text("import asyncio\n\n\nasync def fetch_all(fetch, urls, limit):\n"
                        "    return await asyncio.gather(*(fetch(url) for url in urls))\n")
    feedback = check("05.6", str(starting))
    assert feedback.wrong
    text = repr(feedback)
    assert "12 fetches ran at once" in text and "still running" in text
    assert "Semaphore" not in text and "TaskGroup" not in text  # the check never gives the answer
    serial = tmp_path / "serial.py"
    serial.write_text("async def fetch_all(fetch, urls, limit):\n"
                      "    return [await fetch(url) for url in urls]\n")
    assert "should overlap" in repr(check("05.6", str(serial)))
    plain = tmp_path / "plain.py"
    plain.write_text("def fetch_all(fetch, urls, limit):\n    return []\n")
    assert "async def" in repr(check("05.6", str(plain)))


def test_exercise_05_7_keeps_the_ticker_on_time_and_tells_a_blocking_sum(tmp_path):
    assert not check("05.7", ...).wrong
    right = check("05.7", solution("05d_asyncio.ipynb", "def sum_of_squares", tmp_path))
    if not right:
        assert right.inconclusive, repr(right)  # a busy machine: never a ✗ for the solution
    starting = tmp_path / "blocking.py"
    starting.write_text("async def sum_of_squares(numbers):\n"
                        "    return sum(n * n for n in numbers)\n")
    feedback = check("05.7", str(starting))
    assert feedback.wrong or feedback.inconclusive
    text = repr(feedback)
    assert "late" in text and "sleep(0)" not in text and "to_thread" not in text
    formula = tmp_path / "formula.py"
    formula.write_text("async def sum_of_squares(numbers):\n    n = len(numbers)\n"
                       "    return n * (n - 1) * (2 * n - 1) // 6\n")
    assert "far less time" in repr(check("05.7", str(formula)))
    plain = tmp_path / "plain.py"
    plain.write_text("def sum_of_squares(numbers):\n    return 0\n")
    assert "async def" in repr(check("05.7", str(plain)))


def test_exercise_05_7_tells_a_starved_loop_from_a_blocking_sum(monkeypatch, tmp_path):
    """The same late ticks are ✗ when the loop's thread had its core (the reader's function held
    the loop) and inconclusive when it got well under one (other programs took the core)."""
    import helpers.chapters.ch05_coroutines as co
    import helpers.exercises.ch05 as ch05

    numbers = range(1000)
    expected = sum(n * n for n in numbers)
    monkeypatch.setattr(ch05, "_squares_workload", lambda: (numbers, 0.2))
    module = tmp_path / "any.py"
    module.write_text("async def sum_of_squares(numbers):\n    return 0\n")

    def verdict(cpu_share):
        run = {"quiet ms": 1.0, "returned": expected, "seconds": 0.2, "late ms": 30.0,
               "cpu share": cpu_share}
        monkeypatch.setattr(co, "run_in_thread", lambda *args, **kwargs: dict(run))
        point = [p for p in check("05.7", str(module)).points if "ticks" in p.message][0]
        return point.ok, point.message

    ok, message = verdict(0.97)
    assert ok is False and "Blocking the loop" in message
    ok, message = verdict(0.4)
    assert ok is None and "40% of a core" in message
