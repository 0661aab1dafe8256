"""One run's shared-memory arena: a bounded file in ``/dev/shm`` that every local process
of the run maps, cut into blocks that are reused from hop to hop.

Why an arena rather than a file per buffer: a fresh tmpfs file costs a page allocation,
zeroing and (on the receiving side) a page fault per 4 KB, then the release of every page,
at each hop: most of the time of a 4 MB array between two workers. The arena's pages are
allocated once (the first time a block reaches them) and stay mapped in every process, so
a hop is a copy in and a copy out.

* ``data``: the blocks, ``size`` bytes (sparse; pages are reserved with ``fallocate``
  before a block first uses them, so a full ``/dev/shm`` is an error we can handle, never
  a SIGBUS).
* ``map``: a header (counters) and one byte per unit of the data: the references to the
  block holding it (0: free). A block is referenced by each message carrying it and by each
  process viewing it; an array passed on as it came is sent again without a copy
  (``share``). A block is the first run of free units that fits
  (``mmap.find``: the scan is C), so the low addresses are reused first and the pages
  reserved stay close to the most ever in flight.

The map is changed under a POSIX record lock on the map file (``lockf``), which the kernel
releases when its holder dies: a worker killed inside the few lines below cannot leave the
others waiting.

**Receiving.** An array (any out-of-band buffer) or memoryview is rebuilt *on the block*,
without a copy; the block is freed when the last view of it goes (a ``weakref.finalize``
on the ctypes object the views are made from). ``bytes`` and ``bytearray`` must own
their memory: one copy, and the block is freed at once. Blocks held that way are capped
at half the arena: beyond, the receiver copies out and frees, so a PE that keeps every
item it gets cannot take the room the senders need (and turn every send into a stall).

**Kept messages** (``take(..., keep=True)``, the Redis queues): a task on Redis may be
delivered again (its worker died, its commit was refused), so its blocks must outlive the
first reading. Then the view adds a reference of its own and the message keeps its one,
which its reader drops with :meth:`free` once the task is settled (committed, or given up).
A kept take of a block that has no reference left (a copy of an entry settled before) is
refused (:class:`StaleBlock`), never counted twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import mmap
import os
import struct
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["Arena", "StaleBlock", "bytes_in_flight"]

_log = logging.getLogger(__name__)
UNIT = 64 * 1024  # block granularity (and alignment)
_HEADER = 64  # int64 slots (below), then padding
_IN_FLIGHT, _RESERVED, _FREED, _HELD = 0, 1, 2, 3  # bytes sent not received; bytes with pages;
# blocks freed so far (progress, for waiting senders); bytes received and still viewed
_GROW = 16 << 20  # pages are reserved in steps of at least this much (or up to the end)
_FIRST_NAP_S = 0.0002
_MAX_NAP_S = 0.005
STALL_S = 0.05  # a sender waits for room while blocks are being freed; this long without: in band


class StaleBlock(LookupError):
    """A kept take of a block that is free (its message was settled before) or out of the arena."""


class Arena:
    """Made by the driver (``create``); a copy goes to every worker, which maps it on first use."""

    def __init__(self, folder: str, size: int) -> None:
        self.folder, self.size = folder, size
        self.units = size // UNIT
        self._pid = -1  # the process whose handles these are (a fork inherits the object)

    @classmethod
    def create(cls, folder: str, budget: int) -> Arena | None:
        """The arena of ``budget`` bytes in ``folder``; None when too small for one block."""
        size = budget // UNIT * UNIT
        if size <= 0:
            return None
        with open(os.path.join(folder, "data"), "xb") as data:
            data.truncate(size)
        with open(os.path.join(folder, "map"), "xb") as blocks:
            blocks.truncate(_HEADER + size // UNIT)
        return cls(folder, size)

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "size": self.size, "units": self.units, "_pid": -1}

    # -- per process -------------------------------------------------------------------------
    def open(self) -> None:
        """Map the arena in this process now (``OSError`` if it cannot), not on first use."""
        self._open()

    def _open(self) -> None:
        if self._pid == os.getpid():
            return
        self._thread_lock = threading.Lock()
        self._pending: list[tuple[int, int]] = []  # blocks whose last view went, to free
        self._viewed: dict[int, list[int]] = {}  # offset -> [size, views made here and alive]
        fd = os.open(os.path.join(self.folder, "data"), os.O_RDWR)
        try:
            self._data_fd = fd
            self._mm = mmap.mmap(fd, self.size)
            self._data = memoryview(self._mm)
            self._base = ctypes.addressof(ctypes.c_char.from_buffer(self._mm))
        except BaseException:
            os.close(fd)
            raise
        self._map_fd = os.open(os.path.join(self.folder, "map"), os.O_RDWR)
        self._map = mmap.mmap(self._map_fd, _HEADER + self.units)
        self._pid = os.getpid()

    def close(self) -> None:
        """Unmap this process's view (the driver's, before it removes the folder); a mapping
        still viewed by an array stays until the array goes."""
        if self._pid != os.getpid():
            return
        self._pid = -2  # closed: views that go later free nothing
        self._data.release()
        with contextlib.suppress(BufferError):
            self._mm.close()
        self._map.close()
        os.close(self._map_fd)
        os.close(self._data_fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads, then the other processes (a record lock on the map file).
        Blocks whose views went meanwhile are freed before it is left."""
        self._open()
        with self._thread_lock:
            fcntl.lockf(self._map_fd, fcntl.LOCK_EX)
            try:
                yield
                self._free_pending()
            finally:
                fcntl.lockf(self._map_fd, fcntl.LOCK_UN)

    def _free_pending(self) -> None:
        while self._pending:
            offset, size = self._pending.pop()
            entry = self._viewed[offset]
            entry[1] -= 1
            if not entry[1]:
                del self._viewed[offset]
            self._unmark(offset, size, _HELD)

    def _counter(self, slot: int) -> int:
        return int(struct.unpack_from("q", self._map, 8 * slot)[0])

    def _add(self, slot: int, value: int) -> None:
        struct.pack_into("q", self._map, 8 * slot, self._counter(slot) + value)

    # -- blocks ----------------------------------------------------------------------------
    def put(self, view: memoryview) -> int | None:
        """A block holding ``view``'s bytes: its offset; None when it cannot have one (larger
        than the arena, ``/dev/shm`` full, or the arena full and not draining)."""
        size = view.nbytes
        offset = self._allocate(size)
        if offset is not None:
            self._data[offset : offset + size] = view
        return offset

    def take(self, offset: int, size: int, kind: type[Any] | None = None, keep: bool = False) -> Any:
        """The block received: a view on it (``kind`` None) freed when the last view goes,
        else (or when half the arena is held so already) its bytes copied out as a ``kind``
        (bytes, bytearray, or a memoryview of a bytearray) and the block freed at once.
        ``keep``: the message keeps its reference (its reader frees it later): the view adds
        one of its own, and a copy frees nothing."""
        rounded = -(-size // UNIT) * UNIT
        with self._locked():
            room = self._check_live(offset, size) if keep else True  # room for a view's reference
            viewed = room and kind is None and self._counter(_HELD) + rounded <= self.size // 2
            if viewed:
                if keep:  # one more reference: the view's
                    first, count = _HEADER + offset // UNIT, rounded // UNIT
                    self._map[first : first + count] = bytes([self._map[first] + 1]) * count
                else:  # the message's reference becomes the view's
                    self._add(_IN_FLIGHT, -rounded)
                self._add(_HELD, rounded)
                self._viewed.setdefault(offset, [size, 0])[1] += 1
        if viewed:
            # a ctypes type per rounded size (ctypes keeps every array type it made): few
            holder = (ctypes.c_char * rounded).from_buffer(self._mm, offset)
            weakref.finalize(holder, self._view_gone, os.getpid(), offset, size).atexit = False
            return memoryview(holder).cast("B")[:size]
        try:
            data = self._data[offset : offset + size]
            return memoryview(bytearray(data)) if kind is None else kind(data)
        finally:
            if not keep:
                self.free(offset, size)

    def _check_live(self, offset: int, size: int) -> bool:
        """A block of this arena with references left (locked); whether one more fits."""
        if offset < 0 or offset % UNIT or size <= 0 or offset + size > self.size:
            raise StaleBlock(f"no block of {size} bytes at {offset} in an arena of {self.size}")
        refs = self._map[_HEADER + offset // UNIT]
        if not refs:
            raise StaleBlock(f"the block at {offset} is free")
        return refs < 254

    def share(self, view: memoryview) -> int | None:
        """When ``view`` is exactly a block this process received (an array passed on as it
        came), the block, sent again without a copy: one more reference to it, freed when
        every receiver and viewer is done. None otherwise."""
        self._open()
        if not self._viewed or view.readonly:
            return None
        offset = ctypes.addressof(ctypes.c_char.from_buffer(view)) - self._base
        with self._locked():
            entry = self._viewed.get(offset)
            if entry is None or entry[0] != view.nbytes:
                return None
            first, count = _HEADER + offset // UNIT, -(-view.nbytes // UNIT)
            refs = self._map[first]
            if not 0 < refs < 255:
                return None
            self._map[first : first + count] = bytes([refs + 1]) * count
            self._add(_IN_FLIGHT, count * UNIT)
        return offset

    def free(self, offset: int, size: int) -> None:
        """Free a block not received (or copied out)."""
        with self._locked():
            self._unmark(offset, size, _IN_FLIGHT)

    def _view_gone(self, pid: int, offset: int, size: int) -> None:
        """The last view of a received block went (a finalizer: any thread, any moment,
        maybe inside a locked section): free it now if the lock is free, else whoever holds
        it does, or the next locked section of this process."""
        if pid != os.getpid() or self._pid != pid:
            return  # a forked copy of the view, or the arena closed: not ours to free
        self._pending.append((offset, size))
        if not self._thread_lock.acquire(blocking=False):
            return
        try:
            fcntl.lockf(self._map_fd, fcntl.LOCK_EX)
            try:
                self._free_pending()
            finally:
                fcntl.lockf(self._map_fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _unmark(self, offset: int, size: int, slot: int) -> None:
        """One reference to the block less (a message, or the views of one receiver); the
        block is free when none is left. Each unit's byte in the map holds the count."""
        first, count = _HEADER + offset // UNIT, -(-size // UNIT)
        self._map[first : first + count] = bytes([self._map[first] - 1]) * count
        self._add(slot, -count * UNIT)
        self._add(_FREED, 1)

    def in_use(self) -> int:
        """Bytes in blocks not yet received."""
        with self._locked():
            return self._counter(_IN_FLIGHT)

    def held(self) -> int:
        """Bytes in blocks received and still viewed (by this or another process)."""
        with self._locked():
            return self._counter(_HELD)

    def _allocate(self, size: int) -> int | None:
        count = -(-size // UNIT)
        if count > self.units:
            return None
        nap, idle, seen = _FIRST_NAP_S, 0.0, -1
        while True:
            with self._locked():
                first = self._map.find(b"\0" * count, _HEADER)
                if first >= 0 and not self._reserve(first - _HEADER + count):
                    return None
                if first >= 0:
                    self._map[first : first + count] = b"\1" * count
                    self._add(_IN_FLIGHT, count * UNIT)
                    return (first - _HEADER) * UNIT
                freed = self._counter(_FREED)
            # full: wait while receivers free blocks, like a full channel; when none is
            # freed for STALL_S the receivers may be waiting on this very sender, so the
            # buffer goes in band (bounded by the channel's credits) and nothing deadlocks
            if freed != seen:
                seen, idle, nap = freed, 0.0, _FIRST_NAP_S
            elif idle >= STALL_S:
                _log.debug("shared memory full and not draining: %d bytes in band", size)
                return None
            time.sleep(nap)
            idle += nap
            nap = min(_MAX_NAP_S, nap * 2)

    def _reserve(self, units_end: int) -> bool:
        """Pages for the data up to unit ``units_end`` exist (``fallocate``), so that writing
        through the mapping cannot SIGBUS on a full ``/dev/shm``; False when refused."""
        end = units_end * UNIT
        reserved = self._counter(_RESERVED)
        if end <= reserved:
            return True
        for upto in dict.fromkeys((min(self.size, max(end, reserved + _GROW)), end)):
            try:
                os.posix_fallocate(self._data_fd, reserved, upto - reserved)
            except OSError as exc:
                _log.debug("shared memory refused %d more bytes (%s)", upto - reserved, exc)
                continue
            self._add(_RESERVED, upto - reserved)
            return True
        return False


def bytes_in_flight(folder: str) -> int:
    """The bytes in blocks not yet received of the arena in ``folder``, read from outside
    the run (a test, an observer) without taking the lock: 0 when it has gone."""
    try:
        with open(os.path.join(folder, "map"), "rb") as blocks:
            header = blocks.read(8)
    except OSError:
        return 0
    return int(struct.unpack("q", header)[0]) if len(header) == 8 else 0
