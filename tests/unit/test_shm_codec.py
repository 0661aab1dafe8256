"""The shared-memory codec of the local transports (mappings/processes/shm.py) and its arena
(arena.py), in one process.

What crosses the channel is small; every kind of large buffer comes back equal, arrays on
their blocks until they go; blocks are taken only while a message is in flight or viewed
(unpicklable items and given-up attempts included) and are reused; the arena's budget is
never exceeded: a sender waits while blocks are freed, and what cannot have a block
travels in band.
"""

from __future__ import annotations

import array
import errno
import os
import pickle
import signal
import threading
import time
from dataclasses import dataclass

import multiprocess
import numpy as np
import pytest

from dispel4py.mappings.processes import arena as arena_module
from dispel4py.mappings.processes.shm import ShmCodec, shm_folder_prefix

pytestmark = pytest.mark.timeout(60)
MB = 1 << 20


@dataclass
class Trace:
    name: str
    samples: np.ndarray


@pytest.fixture
def codec():
    codec = ShmCodec.create(multiprocess.get_context("fork"), budget=64 * MB)
    yield codec
    folder = codec.folder
    codec.close()
    assert folder is not None and not os.path.exists(folder)


def test_large_buffers_of_every_kind_travel_in_blocks(codec):
    arr = np.arange(MB, dtype=np.float64)
    view = memoryview(array.array("d", range(100_000)))
    items = [arr, {"raw": bytes(MB), "buf": bytearray(b"x" * MB)}, Trace("t", arr[::2]), view]
    message = ("D", 0, 3, "input", items)
    data = codec.dumps(message)
    assert len(data) < 4096
    # arr, bytes, bytearray, the strided copy of arr, the view; each rounded up to a unit
    assert codec.in_use() == 8 * MB + MB + MB + 4 * MB + 832 * 1024
    got = codec.loads(data)
    # viewed: arr and the memoryview; bytes, bytearray and the strided copy (bytes) were copied
    assert codec.in_use() == 0 and codec.arena.held() == 8 * MB + 832 * 1024
    assert np.array_equal(got[4][0], arr) and got[4][0].flags.writeable
    assert got[4][1]["raw"] == bytes(MB) and type(got[4][1]["raw"]) is bytes
    assert got[4][1]["buf"] == bytearray(b"x" * MB) and type(got[4][1]["buf"]) is bytearray
    assert np.array_equal(got[4][2].samples, arr[::2])
    assert got[4][3].format == "d" and got[4][3].tolist() == view.tolist()


def test_the_received_array_is_on_its_block_until_it_goes(codec):
    first = codec.loads(codec.dumps(np.ones(MB // 8)))
    assert codec.in_use() == 0 and codec.arena.held() == MB  # received, still viewed
    base = first
    while getattr(base, "base", None) is not None and not isinstance(base, memoryview):
        base = base.base
    assert isinstance(base, memoryview)  # no copy: the array's memory is the arena's
    second = codec.loads(codec.dumps(np.full(MB // 8, 2.0)))  # another block: the first is held
    assert first.sum() == MB // 8 and second.sum() == MB // 4 and first.flags.writeable
    del first, base
    assert codec.arena.held() == MB  # the first block is free again
    third = codec.loads(codec.dumps(np.full(MB // 8, 3.0)))  # reuses it
    assert second.sum() == MB // 4 and third.sum() == 3 * MB // 8
    del second, third
    assert codec.arena.held() == 0


def test_a_receiver_keeping_everything_holds_at_most_half_the_arena():
    """Beyond half the arena held, arrays are copied out and their blocks freed at once, so
    the senders always have room."""
    codec = ShmCodec.create(multiprocess.get_context("fork"), budget=8 * MB)
    try:
        kept = [codec.loads(codec.dumps(np.full(MB // 8, float(i)))) for i in range(12)]
        assert codec.arena.held() == 4 * MB and codec.in_use() == 0
        assert [float(a[0]) for a in kept] == [float(i) for i in range(12)]
        del kept
        assert codec.arena.held() == 0
    finally:
        codec.close()


def test_views_that_go_inside_a_locked_section_are_freed_when_it_ends(codec):
    """A view can go at any moment (a finalizer), even while this thread holds the lock:
    its block is freed at the end of that section, without a deadlock."""
    got = codec.loads(codec.dumps(np.ones(MB // 8)))
    with codec.arena._locked():
        del got
        assert codec.arena._counter(3) == MB  # not yet: the lock is held
    assert codec.arena.held() == 0


def test_small_messages_are_plain_pickles(codec):
    message = ("D", 1, 2, "input", [*range(1000), np.zeros(10), b"x" * 100])
    data = codec.dumps(message)
    assert data[:1] == pickle.PROTO and codec.in_use() == 0
    assert codec.loads(data)[4][:1000] == list(range(1000))


def test_a_full_arena_waits_while_blocks_are_freed(monkeypatch):
    """The second array finds the arena full; a receiver frees the first a little later: the
    sender waited for it (the stall limit is made long, so the outcome cannot depend on speed)."""
    monkeypatch.setattr(arena_module, "STALL_S", 600.0)
    codec = ShmCodec.create(multiprocess.get_context("fork"), budget=3 * MB)
    try:
        first = codec.dumps(np.zeros(MB // 4))  # 2 MB: fits
        got = []
        late = threading.Thread(target=lambda: (time.sleep(0.1), got.append(codec.loads(first).sum())))
        late.start()
        second = codec.dumps(np.ones(MB // 4))  # would make 4 MB: waits for the first's block
        late.join()
        assert len(second) < 4096 and codec.in_use() == 2 * MB
        assert np.array_equal(codec.loads(second), np.ones(MB // 4)) and got == [0.0]
        assert codec.in_use() == 0
    finally:
        codec.close()


def test_a_full_arena_that_does_not_drain_sends_in_band():
    """Nobody frees anything (the receivers may be waiting on this sender): after STALL_S
    the buffer travels in band, and the budget is never exceeded."""
    codec = ShmCodec.create(multiprocess.get_context("fork"), budget=3 * MB)
    try:
        first = codec.dumps(np.zeros(MB // 4))  # 2 MB: fits
        second = codec.dumps(np.zeros(MB // 4))  # would make 4 MB: in band
        assert len(second) > 2 * 1000 * 1000 and codec.in_use() == 2 * MB
        too_big = codec.dumps(np.zeros(MB))  # 8 MB: larger than the arena, in band at once
        assert len(too_big) > 8 * 1000 * 1000
        assert np.array_equal(codec.loads(too_big), np.zeros(MB)) and codec.loads(second).shape == (MB // 4,)
        assert codec.loads(first).shape == (MB // 4,)
        assert codec.in_use() == 0 and codec.arena.held() == 0
    finally:
        codec.close()


def test_an_unpicklable_item_leaves_no_block_taken(codec):
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        codec.dumps([np.zeros(MB), lambda: 1, bytes(MB)])
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        codec.dumps([memoryview(bytes(MB)), bytes(MB), lambda: 1])
    assert codec.in_use() == 0


def test_off_means_plain_pickles_and_no_folder():
    for budget in (0, 1000):  # 1000 bytes: less than one block
        codec = ShmCodec.create(multiprocess.get_context("fork"), budget=budget)
        assert codec.folder is None and codec.leftover_paths() == []
        assert np.array_equal(codec.loads(codec.dumps(np.zeros(MB))), np.zeros(MB))


def test_the_folder_is_named_after_the_driver(codec):
    assert os.path.basename(codec.folder).startswith(shm_folder_prefix(os.getpid()))
    assert codec.leftover_paths() == [codec.folder]


def test_a_full_shm_file_system_sends_in_band(codec, monkeypatch):
    """ENOSPC (a container's 64 MB /dev/shm full): the buffer goes through the channel,
    and the arena's pages were reserved before any write (no SIGBUS)."""

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    data = codec.dumps(np.arange(MB))
    assert codec.in_use() == 0 and len(data) > 8 * MB
    assert np.array_equal(codec.loads(data), np.arange(MB))


def test_blocks_from_another_process_come_back_equal(codec):
    """A forked process sends (its own mapping of the arena), this one receives."""
    ctx = multiprocess.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=lambda: writer.send_bytes(codec.dumps([np.arange(MB), bytes(MB)])))
    child.start()
    got = codec.loads(reader.recv_bytes())
    child.join()
    assert np.array_equal(got[0], np.arange(MB)) and got[1] == bytes(MB) and codec.in_use() == 0
    del got
    assert codec.arena.held() == 0


def test_an_array_passed_on_as_it_came_is_sent_without_a_copy(codec):
    """The block is referenced by the new message and by the first receiver's views: it is
    free only when both receivers are done with it."""
    got = codec.loads(codec.dumps(np.arange(MB // 8, dtype=np.float64)))
    again = codec.dumps((1.0, got))  # SumPass: (sum, the same array)
    assert codec.in_use() == MB and codec.arena.held() == MB
    assert codec.arena.share(memoryview(np.ones(MB // 8)).cast("B")) is None  # not a block
    last = codec.loads(again)[1]
    assert codec.in_use() == 0 and codec.arena.held() == 2 * MB  # two references, one block
    del got
    assert codec.arena.held() == MB and np.array_equal(last, np.arange(MB // 8))
    other = codec.loads(codec.dumps(np.full(MB // 8, 5.0)))  # another block: the first is taken
    assert np.array_equal(last, np.arange(MB // 8)) and other[0] == 5.0
    del last, other
    assert codec.arena.held() == 0
    reused = codec.loads(codec.dumps(np.full(MB // 8, 7.0)))
    assert reused[0] == 7.0 and codec.arena._map[64] == 1  # the first unit again, one reference


def test_a_process_killed_holding_the_lock_leaves_it_free(codec):
    """The map's lock is a record lock: the kernel drops it with a SIGKILLed holder, so the
    other processes of the run cannot wait on it forever."""
    ctx = multiprocess.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)

    def hold() -> None:
        with codec.arena._locked():
            writer.send("held")
            time.sleep(600)

    child = ctx.Process(target=hold)
    child.start()
    assert reader.recv() == "held"
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert codec.loads(codec.dumps(np.ones(MB // 8))).sum() == MB // 8


def test_a_pickled_codec_reaches_the_same_arena(codec):
    """What a spawned worker gets: the codec pickled; it maps the arena on first use."""
    copy = pickle.loads(pickle.dumps(codec))
    got = copy.loads(codec.dumps(np.arange(MB // 8)))
    assert np.array_equal(got, np.arange(MB // 8)) and codec.in_use() == 0
    del got
    assert codec.arena.held() == 0


# -- kept messages (the Redis queues: a task may be delivered again until it is settled) ----------
def test_a_kept_message_keeps_its_blocks_until_released(codec):
    data = codec.dumps({"a": np.full(MB // 8, 3.0), "b": b"x" * MB})
    assert ShmCodec.blocks(data) and codec.in_use() == 2 * MB
    first = codec.loads(data, keep=True)
    again = codec.loads(data, keep=True)  # delivered again: the same blocks, still there
    assert float(first["a"][0]) == float(again["a"][0]) == 3.0 and again["b"] == b"x" * MB
    assert codec.in_use() == 2 * MB and codec.arena.held() == 2 * MB  # the message's, two views
    first = again = None
    assert codec.arena.held() == 0 and codec.in_use() == 2 * MB  # the views went, the message stays
    codec.release(ShmCodec.blocks(data))
    assert codec.in_use() == 0


def test_a_kept_take_of_a_block_with_no_reference_left_is_refused(codec):
    data = codec.dumps(np.ones(MB // 8))
    codec.release(ShmCodec.blocks(data))  # settled: the block is free
    with pytest.raises(arena_module.StaleBlock):
        codec.loads(data, keep=True)
    with pytest.raises(arena_module.StaleBlock):  # out of the arena
        codec.arena.take(codec.arena.size, MB, keep=True)
    assert codec.in_use() == 0 and codec.arena.held() == 0


def test_a_kept_array_passed_on_shares_its_block(codec):
    data = codec.dumps(np.full(MB // 8, 5.0))
    got = codec.loads(data, keep=True)
    passed = codec.dumps(got)  # the same block, one more reference (no copy)
    assert ShmCodec.blocks(passed) == ShmCodec.blocks(data)
    codec.release(ShmCodec.blocks(data))
    got = None
    assert float(codec.loads(passed)[0]) == 5.0 and codec.in_use() == 0


def test_an_attached_codec_maps_the_arena_and_never_removes_it(codec):
    other = ShmCodec.attach(codec.folder, codec.arena.size)
    data = codec.dumps(np.full(MB // 8, 6.0))
    assert float(other.loads(data)[-1]) == 6.0
    assert other.leftover_paths() == []
    other.close()
    assert os.path.isdir(codec.folder)
    with pytest.raises(OSError):
        ShmCodec.attach(codec.folder + "-none", MB)


def test_a_kept_block_viewed_very_often_is_copied_out_not_refused():
    """A block's references fit a byte: past 253 views of it, readers get copies."""
    codec = ShmCodec.create(multiprocess.get_context("fork"), budget=1 << 30)  # sparse: no memory
    try:
        data = codec.dumps(np.full(256 * 1024 // 8, 4.0))
        got = [codec.loads(data, keep=True) for _ in range(300)]
        assert all(float(a[0]) == 4.0 for a in got)
        assert codec.arena.held() == 253 * 256 * 1024  # the rest are copies
        got = None
        codec.release(ShmCodec.blocks(data))
        assert codec.in_use() == 0 and codec.arena.held() == 0
    finally:
        codec.close()
