"""The asyncio recorder: real task steps, in order, one lane per task; the loop's idle time."""

from __future__ import annotations

import asyncio
import sys

import pytest

from helpers.timeline import TaskRecorder


async def _ping(name: str, log: list, rounds: int) -> str:
    for i in range(rounds):
        log.append((name, i))
        await asyncio.sleep(0)
    return name


def test_steps_alternate_between_two_tasks_that_yield():
    log: list = []

    async def main():
        async with TaskRecorder() as rec:
            await asyncio.gather(asyncio.create_task(_ping("a", log, 3), name="a"),
                                 asyncio.create_task(_ping("b", log, 3), name="b"))
        return rec

    rec = asyncio.run(main())
    trace = rec.recording()
    runs = sorted((e for e in trace if e.kind == "run"), key=lambda e: e.start_ns)
    # 3 rounds + the final step that returns, per task, taking turns as the log says.
    assert [e.lane for e in runs] == ["a", "b"] * 4
    assert [name for name, _ in log] == ["a", "b"] * 3
    assert all(e.end_ns <= n.start_ns for e, n in zip(runs, runs[1:]))  # one thread: no overlap
    assert rec.steps == 8


def test_a_waiting_task_leaves_the_loop_idle_and_total_is_the_longest_wait():
    async def nap(seconds):
        await asyncio.sleep(seconds)

    async def main():
        async with TaskRecorder() as rec:
            await asyncio.gather(*(asyncio.create_task(nap(0.05 * (i + 1)), name=f"nap {i}")
                                   for i in range(3)))
        return rec

    trace = asyncio.run(main()).recording()
    assert set(trace.lanes()) == {"nap 0", "nap 1", "nap 2", "event loop"}
    idle = sum(e.duration_ns for e in trace if e.lane == "event loop")
    run = sum(e.duration_ns for e in trace if e.kind == "run")
    assert idle > 0.12e9 and run < idle / 10  # waiting, not computing: the waits overlapped
    ends = {e.lane: e.end_ns for e in trace if e.kind == "run"}
    assert ends["nap 0"] < ends["nap 1"] < ends["nap 2"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TaskGroup is new in Python 3.11")
def test_task_group_tasks_and_their_cancellation_are_recorded():
    async def fail_soon():
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    async def long_wait():
        await asyncio.sleep(10)

    async def main():
        async with TaskRecorder() as rec:
            with pytest.raises(BaseException) as raised:
                async with asyncio.TaskGroup() as group:
                    group.create_task(long_wait(), name="long")
                    group.create_task(fail_soon(), name="fails")
            assert type(raised.value).__name__ == "ExceptionGroup"
        return rec

    trace = asyncio.run(asyncio.wait_for(main(), 5)).recording()
    long_steps = [e for e in trace if e.lane == "long"]
    assert len(long_steps) == 2  # its first step, and the step in which it was cancelled


def test_the_previous_task_factory_is_kept_and_restored():
    made = []

    def factory(loop, coro, **kwargs):
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_task_factory(factory)
        async with TaskRecorder() as rec:
            await asyncio.create_task(_ping("x", [], 1), name="x")
        assert loop.get_task_factory() is factory
        return rec

    rec = asyncio.run(main())
    pings = [c for c in made if "_ping" in repr(c)]  # asyncio.run makes its own tasks after
    assert len(pings) == 1 and type(pings[0]).__name__ == "_Steps"
    assert [e.lane for e in rec.recording() if e.kind == "run"] == ["x", "x"]


def test_used_wrongly_it_says_how():
    with pytest.raises(RuntimeError):
        TaskRecorder().__enter__()  # no running loop
    with pytest.raises(RuntimeError, match="with"):
        TaskRecorder().recording()
    with pytest.raises(ValueError, match="loop_lane"):
        TaskRecorder(loop_lane="")
