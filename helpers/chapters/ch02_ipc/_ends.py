"""The four channels of chapter 02 behind one interface, so one sender and one receiver loop
measure them all::

    end.wait_send() -> bool   wait until a message may be sent (shared memory: a free slot)
    end.send(data)            send one bytes message
    end.wait_recv() -> bool   wait until a message is there (Queue, Pipe: poll; ring: a full slot)
    end.recv() -> int         take one message, return its length
    end.warm() / end.close()  map the pages beforehand / detach afterwards

    QueueEnd     multiprocessing.Queue: put() hands the object to the feeder thread
    PipeEnd      Pipe(duplex=False): send_bytes / recv_bytes, no pickling
    ShmRing      a ring of one-message slots in a SharedMemory block, semaphores `free` and `full`
    ManagerEnd   a Manager's queue proxy: every put and get a round trip to the server

Ends pickle to the children that use them (queues, pipes and semaphores as Process arguments,
the ring's block by name). `Channels.close()` unlinks what the parent made, whatever happened.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from helpers.course import check_choice, check_int
from helpers.runners.cleanup import queue_parts, release_semaphores, unlink_shared_memory

__all__ = ["CHANNELS", "MAX_MESSAGE_BYTES", "OP_TIMEOUT_SECONDS", "Channels", "ManagerEnd",
           "PipeEnd", "QueueEnd", "ShmRing", "open_channels", "ring_receive", "ring_send",
           "ring_slots"]

# The channels the chapter compares, in the order it introduces them.
CHANNELS = ("Queue", "Pipe", "shared memory", "Manager")
# A message this large or larger goes through a ring of 2 slots (2 × 128 MiB of /dev/shm at most);
# smaller ones get 4 slots, so the sender can run ahead of the receiver (measured here: more
# slots than that only spread the copies over more cache).
_BIG_MESSAGE = 4 << 20
_SLOTS_SMALL, _SLOTS_BIG = 4, 2
MAX_MESSAGE_BYTES = 128 << 20  # one message: room for the exercise's 100 MiB array
# One channel operation waits at most this long: a peer that died is noticed instead of awaited.
OP_TIMEOUT_SECONDS = 30.0
_PAGE = 4096  # bytes: touching one byte per page maps the page
# A ring end tries this many times (~0.2 µs each) before it sleeps on a semaphore: ~50 µs, the
# time one 1 MiB copy takes, so a peer in the middle of one is waited for without sleeping.
_SPINS = 250


def ring_slots(size: int) -> int:
    """How many one-message slots the shared-memory ring has for messages of `size` bytes."""
    check_int("message_size", size, 1, MAX_MESSAGE_BYTES)
    return _SLOTS_BIG if size >= _BIG_MESSAGE else _SLOTS_SMALL


class QueueEnd:
    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __getstate__(self) -> dict:
        return {"queue": self.queue}  # the reader below is looked up again where the end is used

    @functools.cached_property
    def _reader(self) -> Any:
        # Waiting for data apart from reading it, to draw them apart: concurrent.futures waits on
        # the same internal connection of its result queue. A Python without it: None, and
        # recv's get() does the waiting.
        return queue_parts(self.queue).get("_reader")

    def wait_send(self) -> bool:
        return True  # an unbounded Queue never blocks put(): the feeder thread buffers

    def send(self, data: Any) -> None:
        self.queue.put(data)

    def wait_recv(self) -> bool:
        return True if self._reader is None else self._reader.poll(OP_TIMEOUT_SECONDS)

    def recv(self) -> int:
        return len(self.queue.get(timeout=OP_TIMEOUT_SECONDS))

    def warm(self) -> None:
        pass

    def close(self) -> None:
        pass


class PipeEnd:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader, self.writer = reader, writer

    def wait_send(self) -> bool:
        return True  # send_bytes blocks while the OS pipe is full: that shows as "send"

    def send(self, data: Any) -> None:
        self.writer.send_bytes(data)

    def wait_recv(self) -> bool:
        return self.reader.poll(OP_TIMEOUT_SECONDS)

    def recv(self) -> int:
        return len(self.reader.recv_bytes())

    def warm(self) -> None:
        pass

    def close(self) -> None:
        pass


def _acquire(semaphore: Any) -> bool:
    """Take `semaphore`: try a few times without sleeping, then sleep until it is released.

    The other end usually releases within microseconds; going to sleep and being woken costs the
    OS a wake-up and a reschedule each time, often more than copying a whole message.
    """
    for _ in range(_SPINS):
        if semaphore.acquire(False):
            return True
    return semaphore.acquire(timeout=OP_TIMEOUT_SECONDS)


class ShmRing:
    """A ring of `slots` slots in one `SharedMemory` block; `free` and `full` count the slots."""

    def __init__(self, ctx: Any, slot_bytes: int, slots: int, *, name: str | None = None) -> None:
        self.slot_bytes, self.slots = slot_bytes, slots
        self.shm = shared_memory.SharedMemory(name, create=True, size=slot_bytes * slots)
        try:  # an interrupt from here on must not leave the block in /dev/shm
            self.lengths = ctx.Array("q", slots, lock=False)  # bytes in each slot
            self.free, self.full = ctx.Semaphore(slots), ctx.Semaphore(0)
            self._reset()
            self._view.fill(0)  # allocate every page now, not during the first messages
        except BaseException:
            self._view = self._out = None
            unlink_shared_memory(self.shm)
            raise

    def _reset(self) -> None:
        self._next = 0
        self._view = np.ndarray((self.slots, self.slot_bytes), np.uint8, buffer=self.shm.buf)
        self._out: np.ndarray | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in ("_view", "_out", "_next"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def warm(self) -> None:
        """Map every page of the ring into this process, as a steady stream of messages would."""
        int(self._view[:, ::_PAGE].sum())
        self._out = np.ones(self.slot_bytes, np.uint8)

    def wait_send(self) -> bool:
        return _acquire(self.free)

    def send(self, data: Any) -> None:
        ring_send(self, data)

    def wait_recv(self) -> bool:
        return _acquire(self.full)

    def recv(self) -> int:
        return ring_receive(self)

    def close(self) -> None:
        self._view = self._out = None  # no numpy view may outlive the mapping
        self.shm.close()


def ring_send(ring: ShmRing, data: bytes) -> None:
    """Copy one message into the ring's next slot (a free one: ``ring.free`` was acquired)."""
    slot, n = ring._next, len(data)
    ring._view[slot, :n] = np.frombuffer(data, np.uint8)  # the one copy in
    ring.lengths[slot] = n
    ring._next = (slot + 1) % ring.slots
    ring.full.release()  # one more full slot: the receiver may take it


def ring_receive(ring: ShmRing) -> int:
    """Copy the next message out of the ring (a full slot: ``ring.full`` was acquired)."""
    slot = ring._next
    n = ring.lengths[slot]
    if ring._out is None:
        ring._out = np.empty(ring.slot_bytes, np.uint8)
    np.copyto(ring._out[:n], ring._view[slot, :n])  # the one copy out
    ring._next = (slot + 1) % ring.slots
    ring.free.release()  # the slot is free again: the sender may fill it
    return int(n)


class ManagerEnd(QueueEnd):
    def wait_recv(self) -> bool:
        return True  # a proxy cannot wait without asking the server: get() does both

    def recv(self) -> int:
        return len(self.queue.get(timeout=OP_TIMEOUT_SECONDS))


@dataclass
class Channels:
    """The send and receive end for each sender, and everything to release afterwards."""

    kind: str
    senders: list[Any]
    receivers: list[Any]
    owned: list[Any] = field(default_factory=list)
    # Every block name, noted *before* the block is made: an interrupt that lands between the
    # block's creation and its ring joining `owned` still cannot leave it in /dev/shm.
    block_names: list[str] = field(default_factory=list)

    def close(self) -> None:
        for ring in self.owned:
            if isinstance(ring, ShmRing):
                ring._view = ring._out = None
                unlink_shared_memory(ring.shm)
        for name in self.block_names:
            try:
                block = shared_memory.SharedMemory(name=name)
            except FileNotFoundError:
                continue  # unlinked above, or never made
            unlink_shared_memory(block)
        release_semaphores(*self.owned)


def open_channels(kind: str, ctx: Any, *, senders: int, sizes: Sequence[int],
                  manager: Any = None) -> Channels:
    """Ends for each step of a plan: ``senders[step][i]`` sends to ``receivers[step][i]``.

    Queue and Manager: one queue shared by every sender and step. Pipe: one pipe per sender.
    Shared memory: one ring per sender and message size, each slot exactly one message long.
    """
    check_choice("channel", kind, CHANNELS)
    steps = len(sizes)
    if kind in ("Queue", "Manager"):
        if kind == "Manager" and manager is None:
            raise ValueError("channel 'Manager' needs manager=ctx.Manager(), started")
        queue = ctx.Queue() if kind == "Queue" else manager.Queue()
        end = QueueEnd(queue) if kind == "Queue" else ManagerEnd(queue)
        # The receiver takes from "each sender's end" in turn: here the one shared end, as many
        # times as there are senders.
        return Channels(kind, [[end] * senders] * steps, [[end] * senders] * steps,
                         [queue] if kind == "Queue" else [])
    if kind == "Pipe":
        ends = [PipeEnd(*ctx.Pipe(duplex=False)) for _ in range(senders)]
        return Channels(kind, [ends] * steps, [ends] * steps)
    channels = Channels(kind, [], [])
    try:
        for size in sizes:
            slots = ring_slots(size)
            rings = []
            for _ in range(senders):
                channels.block_names.append(f"cc02_{secrets.token_hex(8)}")
                rings.append(ShmRing(ctx, size, slots, name=channels.block_names[-1]))
                channels.owned.append(rings[-1])
            channels.senders.append(rings)
            channels.receivers.append(rings)
    except BaseException:
        channels.close()
        raise
    return channels
