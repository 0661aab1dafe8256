"""Large buffers between local workers through shared memory: the codec every local
transport (``multi``'s queues, ``zmq_multi``'s sockets, the dynamic engine's task queues)
uses to turn a message into bytes and back.

A message is pickled with protocol 5. Every buffer pickle hands out of band (numpy arrays
and other ``PickleBuffer`` users, anywhere in the message) of at least ``threshold`` bytes
is copied into a block of the run's arena (``arena.py``: one bounded file under
``/dev/shm``, blocks reused from hop to hop); only the pickle and the blocks' offsets and
sizes go through the channel. ``bytes``, ``bytearray`` and ``memoryview`` items, which
pickle keeps in band (or refuses), are lifted out the same way when the message's pickle
is large (``_LIFT_AT``) or refuses a memoryview.

The receiver rebuilds arrays and memoryviews on their blocks (no copy), ``bytes`` and
``bytearray`` with one copy (``Arena.take``); an array passed on as it came goes on in the
same block (``Arena.share``: no copy either); a block is freed when its message is received
and copied out, or when the last view of it goes. What was never received (a PE error, a
killed worker, Ctrl-C) goes with the run's folder when the driver closes the channels, or
is removed by a worker that outlives a killed driver (``leftover_paths``).

**Bounded.** The arena is ``budget`` bytes. A sender finding it full waits while
receivers free blocks, as a writer waits on a full channel; if none is freed for
``arena.STALL_S`` (the receivers may be waiting on this sender) the buffer travels in band,
through the channel, whose bytes the executor's credits and the dynamic engine's bounded
queues already bound. So the arena adds no cycle of waits to design.md's argument.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from typing import Any

from dispel4py.mappings.processes.arena import Arena
from dispel4py.mappings.processes.lifetime import remove_folder

__all__ = ["NotMapped", "ShmCodec", "shm_folder_prefix"]

_PROTOCOL = 5
_TAG = b"S"  # first byte of a message with blocks; a plain pickle starts with PROTO (0x80)
# Smaller buffers stay in the pickle: a block costs two copies and a few system calls,
# more than the pipe below this size (measured in benchmarks/large_items.py).
THRESHOLD = 256 * 1024
_LIFT_AT = 256 * 1024  # in-band pickle size from which bytes/bytearray/memoryview are lifted
_BUDGET_CAP = 2 << 30
_LIFTED = (bytes, bytearray, memoryview)


def shm_folder_prefix(driver_pid: int) -> str:
    """The name every run of the driver ``driver_pid`` gives its folder starts with."""
    return f"d4py-shm-{driver_pid}-"


def _shm_parent() -> str:
    """/dev/shm (memory) where there is one; elsewhere the temporary folder."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


class ShmCodec:
    """Made by the driver (``create``); a copy goes to every worker with the channels."""

    def __init__(self, folder: str | None, threshold: int, budget: int, arena: Arena | None) -> None:
        self.folder = folder  # None: shared memory off, every message is a plain pickle
        self.threshold = threshold
        self.budget = budget
        self.arena = arena
        self.owner = True  # the driver's: removes the folder when closed

    @classmethod
    def attach(cls, folder: str, size: int, threshold: int = THRESHOLD) -> ShmCodec:
        """The arena another process of the same host made (a worker that joined a run):
        used, never removed; ``OSError`` if this process cannot open it."""
        arena = Arena(folder, size)
        arena.open()
        codec = cls(folder, threshold, size, arena)
        codec.owner = False
        return codec

    @classmethod
    def create(cls, ctx: Any, budget: int | None = None, threshold: int = THRESHOLD) -> ShmCodec:
        """A new arena for one run; ``budget`` 0 (or less than one block) turns it off.
        (``ctx``, the multiprocessing context, is not needed by the arena any more.)"""
        if budget is None:
            stat = os.statvfs(_shm_parent())
            budget = min(_BUDGET_CAP, stat.f_bavail * stat.f_frsize // 2)
        if budget <= 0:
            return cls(None, threshold, 0, None)
        folder = tempfile.mkdtemp(prefix=shm_folder_prefix(os.getpid()), dir=_shm_parent())
        try:
            arena = Arena.create(folder, budget)
        except BaseException:
            remove_folder(folder)
            raise
        if arena is None:
            remove_folder(folder)
            return cls(None, threshold, 0, None)
        return cls(folder, max(1, threshold), arena.size, arena)

    def leftover_paths(self) -> list[str]:
        return [] if self.folder is None or not self.owner else [self.folder]

    def in_use(self) -> int:
        """Bytes of messages sent and not yet received."""
        return 0 if self.arena is None else self.arena.in_use()

    def close(self) -> None:
        """The driver's: remove the folder with whatever was never received (idempotent);
        an attached codec only unmaps it."""
        if self.folder is not None:
            if self.arena is not None:
                self.arena.close()
            if self.owner:
                remove_folder(self.folder)
            self.folder, self.arena = None, None

    # -- sending ------------------------------------------------------------------------------
    def dumps(self, message: Any) -> bytes:
        """``message`` as bytes for a channel; large buffers go to blocks of the arena."""
        if self.arena is None:
            return pickle.dumps(message, protocol=_PROTOCOL)
        out = _Outgoing(self.arena, self.threshold)
        try:
            try:
                data = pickle.dumps(message, protocol=_PROTOCOL, buffer_callback=out.buffer)
                lift = len(data) >= _LIFT_AT
            except TypeError:  # e.g. a memoryview, which only the lifting pickler takes
                lift = True
            if lift:
                out.discard()
                data = out.lifting_dumps(message)
        except BaseException:
            out.discard()  # an unpicklable item: no block may stay taken
            raise
        if not out.blocks:
            return data
        return _TAG + pickle.dumps((data, out.blocks, out.oob), protocol=_PROTOCOL)

    # -- receiving -------------------------------------------------------------------------------
    def loads(self, data: Any, keep: bool = False) -> Any:
        """The message ``dumps`` made (``data``: bytes or a buffer). ``keep``: the message
        keeps its blocks (``Arena.take``), which :meth:`release` frees once it is settled
        (a task that may be delivered again); :class:`~.arena.StaleBlock` for a block that
        has none left."""
        if data[0] != _TAG[0]:
            return pickle.loads(data)
        main, blocks, oob = pickle.loads(memoryview(data)[1:])
        if self.arena is None:
            raise NotMapped("a message with blocks of shared memory reached a process without the arena")
        copies = _take_all(self.arena, blocks, keep)
        unpickler = _Unpickler(io.BytesIO(main), copies, buffers=[copies[i] for i in oob])
        return unpickler.load()

    @staticmethod
    def blocks(data: Any) -> list[tuple[int, int]]:
        """The blocks (offset, size) of the message ``dumps`` made: none for a plain pickle."""
        if not data or data[0] != _TAG[0]:
            return []
        return [(offset, size) for offset, size, _ in pickle.loads(memoryview(data)[1:])[1]]

    def release(self, blocks: list[tuple[int, int]]) -> None:
        """Drop the message's reference to each of its blocks (kept by ``loads(keep=True)``,
        or a message never sent)."""
        if self.arena is not None:
            for offset, size in blocks:
                self.arena.free(offset, size)


class NotMapped(LookupError):
    """A message with blocks reached a process that has no arena (another host's)."""


_KINDS = {"v": None, "b": bytes, "a": bytearray}  # a view on the block; copies


def _take_all(arena: Arena, blocks: list[tuple[int, int, str]], keep: bool = False) -> list[Any]:
    """Every block received (``Arena.take``: a view, or a copy for ``bytes``/``bytearray``
    items), all of them also when one fails (out of memory); ``keep``: the message keeps
    its references (nothing freed here)."""
    got: list[Any] = []
    try:
        for offset, size, kind in blocks:
            got.append(arena.take(offset, size, _KINDS[kind], keep))
    finally:
        for offset, size, _ in [] if keep else blocks[len(got) + 1 :]:
            arena.free(offset, size)
    return got


class _Outgoing:
    """One message being pickled: the blocks written for it (offset, size)."""

    def __init__(self, arena: Arena, threshold: int) -> None:
        self.arena, self.threshold = arena, threshold
        self.blocks: list[tuple[int, int, str]] = []  # offset, size, kind (_KINDS)
        self.oob: list[int] = []  # indexes in blocks of the out-of-band buffers, in order

    def buffer(self, pb: pickle.PickleBuffer) -> bool:
        """pickle's buffer_callback: False (out of band) when the buffer went to a block."""
        index = self.block(pb.raw())
        if index is None:
            return True
        self.oob.append(index)
        return False

    def block(self, view: memoryview, kind: str = "v") -> int | None:
        """The index of a new block holding ``view``; None: it stays in band."""
        if view.nbytes < self.threshold:
            return None
        offset = self.arena.share(view)  # an array received here and passed on: no copy
        if offset is None:
            offset = self.arena.put(view)
        if offset is None:
            return None
        self.blocks.append((offset, view.nbytes, kind))
        return len(self.blocks) - 1

    def lifting_dumps(self, message: Any) -> bytes:
        stream = io.BytesIO()
        _LiftingPickler(stream, self).dump(message)
        return stream.getvalue()

    def discard(self) -> None:
        """Free the blocks of a pickling attempt given up."""
        blocks, self.blocks, self.oob = self.blocks, [], []
        for offset, size, _ in blocks:
            self.arena.free(offset, size)


class _LiftingPickler(pickle.Pickler):
    """Also lifts large ``bytes``/``bytearray``/``memoryview`` objects (persistent ids)."""

    def __init__(self, stream: io.BytesIO, out: _Outgoing) -> None:
        super().__init__(stream, protocol=_PROTOCOL, buffer_callback=out.buffer)
        self.out = out

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind not in _LIFTED:
            return None
        if kind is memoryview:
            return self._view_id(obj)
        index = self.out.block(memoryview(obj), "b" if kind is bytes else "a")
        return None if index is None else (kind.__name__, index)

    def _view_id(self, view: memoryview) -> tuple[Any, ...]:
        flat = view if view.c_contiguous else memoryview(view.tobytes())
        fmt: str = view.format
        shape: tuple[int, ...] = tuple(view.shape or ())
        try:
            flat = flat.cast("B")
            flat.cast(fmt, shape)  # type: ignore[call-overload]
        except (TypeError, ValueError):  # a format cast cannot rebuild: it travels as bytes
            fmt, shape = "B", (flat.nbytes,)
        index = self.out.block(flat)
        return ("mv", flat.tobytes() if index is None else index, fmt, shape)


class _Unpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, views: list[Any], buffers: list[Any]) -> None:
        super().__init__(stream, buffers=buffers)
        self.views = views

    def persistent_load(self, pid: Any) -> Any:
        kind, where = pid[0], pid[1]
        if kind == "mv":
            view = memoryview(where if isinstance(where, bytes) else self.views[where])
            fmt, shape = pid[2], pid[3]
            return view if (fmt, shape) == ("B", (view.nbytes,)) else view.cast(fmt, shape)
        return self.views[where]  # a bytes or bytearray, copied out as such
