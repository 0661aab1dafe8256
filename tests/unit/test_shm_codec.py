"""The shared-memory codec of the local transports (mappings/processes/shm.py), in one process.

What crosses the channel is small; every kind of large buffer comes back equal; files live
only while a message is in flight (unpicklable items and given-up attempts included); the
arena's budget is never exceeded (what does not fit travels in band).
"""

from __future__ import annotations

import array
import errno
import os
import pickle
from dataclasses import dataclass

import multiprocess
import numpy as np
import pytest

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


def files(codec: ShmCodec) -> list[str]:
    return os.listdir(codec.folder)


def test_large_buffers_of_every_kind_travel_as_files(codec):
    arr = np.arange(MB, dtype=np.float64)
    view = memoryview(array.array("d", range(100_000)))
    items = [arr, {"raw": bytes(MB), "buf": bytearray(b"x" * MB)}, Trace("t", arr[::2]), view]
    message = ("D", 0, 3, "input", items)
    data = codec.dumps(message)
    assert len(data) < 4096
    assert len(files(codec)) == 5  # arr, bytes, bytearray, the strided copy of arr, the view
    assert codec.used.value >= 4 * MB
    got = codec.loads(data)
    assert files(codec) == [] and codec.used.value == 0
    assert np.array_equal(got[4][0], arr) and got[4][0].flags.writeable
    assert got[4][1]["raw"] == bytes(MB) and type(got[4][1]["raw"]) is bytes
    assert got[4][1]["buf"] == bytearray(b"x" * MB) and type(got[4][1]["buf"]) is bytearray
    assert np.array_equal(got[4][2].samples, arr[::2])
    assert got[4][3].format == "d" and got[4][3].tolist() == view.tolist()


def test_the_received_array_is_the_mapping_itself(codec):
    got = codec.loads(codec.dumps(np.ones(MB // 8)))
    base = got
    while getattr(base, "base", None) is not None and not isinstance(base, memoryview):
        base = base.base
    assert isinstance(base, memoryview)  # no copy: the array's memory is the mapped file


def test_small_messages_are_plain_pickles(codec):
    message = ("D", 1, 2, "input", [*range(1000), np.zeros(10), b"x" * 100])
    data = codec.dumps(message)
    assert data[:1] == pickle.PROTO and files(codec) == []
    assert codec.loads(data)[4][:1000] == list(range(1000))


def test_a_full_arena_sends_in_band_and_never_exceeds_its_budget():
    codec = ShmCodec.create(multiprocess.get_context("fork"), budget=3 * MB)
    try:
        first = codec.dumps(np.zeros(MB // 4))  # 2 MB: fits
        second = codec.dumps(np.zeros(MB // 4))  # would make 4 MB: in band
        assert len(files(codec)) == 1 and len(second) > 2 * 1000 * 1000
        assert codec.used.value == 2 * MB
        codec.loads(first)
        alone = codec.dumps(np.zeros(MB))  # 8 MB alone, nothing in flight: allowed
        assert len(files(codec)) == 1
        assert np.array_equal(codec.loads(alone), np.zeros(MB)) and codec.loads(second).shape == (MB // 4,)
        assert codec.used.value == 0
    finally:
        codec.close()


def test_an_unpicklable_item_leaves_no_file(codec):
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        codec.dumps([np.zeros(MB), lambda: 1, bytes(MB)])
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        codec.dumps([memoryview(bytes(MB)), bytes(MB), lambda: 1])
    assert files(codec) == [] and codec.used.value == 0


def test_off_means_plain_pickles_and_no_folder():
    codec = ShmCodec.create(multiprocess.get_context("fork"), budget=0)
    assert codec.folder is None and codec.leftover_paths() == []
    assert np.array_equal(codec.loads(codec.dumps(np.zeros(MB))), np.zeros(MB))


def test_the_folder_is_named_after_the_driver(codec):
    assert os.path.basename(codec.folder).startswith(shm_folder_prefix(os.getpid()))
    assert codec.leftover_paths() == [codec.folder]


def test_a_full_shm_file_system_sends_in_band(codec, monkeypatch):
    """ENOSPC (a container's 64 MB /dev/shm full): the buffer goes through the channel."""
    real_write = os.write

    def full(fd, data):
        if fd > 2 and len(data) > 1000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    data = codec.dumps(np.arange(MB))
    monkeypatch.setattr(os, "write", real_write)
    assert files(codec) == [] and codec.used.value == 0 and len(data) > 8 * MB
    assert np.array_equal(codec.loads(data), np.arange(MB))
