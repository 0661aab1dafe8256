"""Large buffers between local workers through shared memory: the codec every local
transport (``multi``'s queues, ``zmq_multi``'s sockets, the dynamic engine's task queues)
uses to turn a message into bytes and back.

A message is pickled with protocol 5. Every buffer pickle hands out of band (numpy arrays
and other ``PickleBuffer`` users, anywhere in the message) of at least ``threshold`` bytes
is written to a file of its own in a private folder of the run under ``/dev/shm``; only
the pickle and the files' names and sizes go through the channel. ``bytes``, ``bytearray``
and ``memoryview`` items, which pickle keeps in band (or refuses), are lifted out the same
way when the message's pickle is large (``_LIFT_AT``) or refuses a memoryview.

The receiver maps each file and unlinks it at once, so a file lives only while its message
is in flight: a numpy array or memoryview is rebuilt *on the mapping* (no copy; the memory
goes when the last view of it does), ``bytes``/``bytearray`` with one copy (they must own
their memory). What was never received (a PE error, a killed worker, Ctrl-C) is removed
with the folder when the driver closes the channels, or by a worker that outlives a
killed driver (``leftover_paths``).

**Bounded.** The bytes in files not yet received are counted in shared memory and never
exceed ``budget`` (unless one buffer alone is larger and nothing else is in flight): a
buffer that does not fit travels in band, through the channel, whose bytes the executor's
credits and the dynamic engine's bounded queues already bound. So a full arena never
blocks a sender, and cannot add a wait to the deadlock-freedom argument of design.md.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import mmap
import os
import pickle
import tempfile
from typing import Any

from dispel4py.mappings.processes.lifetime import remove_folder

__all__ = ["ShmCodec", "shm_folder_prefix"]

_log = logging.getLogger(__name__)
_PROTOCOL = 5
_TAG = b"S"  # first byte of a message with files; a plain pickle starts with PROTO (0x80)
# Smaller buffers stay in the pickle: a new file costs more than the pipe there (200 arrays
# of 64 KB: 1.7x slower through files than through multi's pipes; 1 MB and 4 MB: faster).
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

    def __init__(self, folder: str | None, threshold: int, budget: int, used: Any) -> None:
        self.folder = folder  # None: shared memory off, every message is a plain pickle
        self.threshold = threshold
        self.budget = budget
        self.used = used  # shared counter: bytes in files not yet received
        self._names = itertools.count()

    @classmethod
    def create(cls, ctx: Any, budget: int | None = None, threshold: int = THRESHOLD) -> ShmCodec:
        """A new arena for one run; ``budget`` 0 turns shared memory off."""
        if budget == 0:
            return cls(None, threshold, 0, None)
        parent = _shm_parent()
        if budget is None:
            stat = os.statvfs(parent)
            budget = min(_BUDGET_CAP, stat.f_bavail * stat.f_frsize // 2)
        folder = tempfile.mkdtemp(prefix=shm_folder_prefix(os.getpid()), dir=parent)
        return cls(folder, max(1, threshold), budget, ctx.Value("q", 0))

    def leftover_paths(self) -> list[str]:
        return [] if self.folder is None else [self.folder]

    def close(self) -> None:
        """The driver's: remove the folder with whatever was never received (idempotent)."""
        if self.folder is not None:
            remove_folder(self.folder)
            self.folder = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_names"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._names = itertools.count()

    # -- sending ------------------------------------------------------------------------------
    def dumps(self, message: Any) -> bytes:
        """``message`` as bytes for a channel; large buffers go to files."""
        if self.folder is None:
            return pickle.dumps(message, protocol=_PROTOCOL)
        out = _Outgoing(self)
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
            out.discard()  # an unpicklable item: no file may outlive the error
            raise
        if not out.files:
            return data
        return _TAG + pickle.dumps((data, out.files, out.oob), protocol=_PROTOCOL)

    def reserve(self, size: int) -> bool:
        with self.used.get_lock():
            if self.used.value and self.used.value + size > self.budget:
                return False
            self.used.value += size
            return True

    def release(self, size: int) -> None:
        with self.used.get_lock():
            self.used.value -= size

    def write_file(self, view: memoryview) -> str | None:
        """A new file in the folder holding ``view``'s bytes; its name, or None when the
        file system refuses it (``/dev/shm`` full: a container's is often 64 MB), so the
        buffer goes in band instead of failing the run."""
        assert self.folder is not None
        name = f"{os.getpid()}-{next(self._names)}"
        path = os.path.join(self.folder, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:
            _log.debug("shared memory refused %d bytes (%s): sending them in band", view.nbytes, exc)
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        return name

    # -- receiving -------------------------------------------------------------------------------
    def loads(self, data: Any) -> Any:
        """The message ``dumps`` made (``data``: bytes or a buffer)."""
        if data[0] != _TAG[0]:
            return pickle.loads(data)
        main, files, oob = pickle.loads(memoryview(data)[1:])
        views = [self._take(name, size) for name, size in files]
        unpickler = _Unpickler(io.BytesIO(main), views, buffers=[views[i] for i in oob])
        return unpickler.load()

    def _take(self, name: str, size: int) -> memoryview:
        """Map the file, unlink it (the mapping keeps the memory) and count it received."""
        assert self.folder is not None
        path = os.path.join(self.folder, name)
        fd = os.open(path, os.O_RDWR)
        try:
            mapped = mmap.mmap(fd, size)
        finally:
            os.close(fd)
            os.unlink(path)
            self.release(size)
        return memoryview(mapped)


class _Outgoing:
    """One message being pickled: the files written for it (name, size)."""

    def __init__(self, codec: ShmCodec) -> None:
        self.codec = codec
        self.files: list[tuple[str, int]] = []
        self.oob: list[int] = []  # indexes in files of the out-of-band buffers, in order

    def buffer(self, pb: pickle.PickleBuffer) -> bool:
        """pickle's buffer_callback: False (out of band) when the buffer went to a file."""
        index = self._file(pb.raw())
        if index is None:
            return True
        self.oob.append(index)
        return False

    def _file(self, view: memoryview) -> int | None:
        size = view.nbytes
        if size < self.codec.threshold or not self.codec.reserve(size):
            return None
        try:
            name = self.codec.write_file(view)
        except BaseException:
            self.codec.release(size)
            raise
        if name is None:
            self.codec.release(size)
            return None
        self.files.append((name, size))
        return len(self.files) - 1

    def lifting_dumps(self, message: Any) -> bytes:
        stream = io.BytesIO()
        _LiftingPickler(stream, self).dump(message)
        return stream.getvalue()

    def discard(self) -> None:
        """Remove the files of a pickling attempt given up."""
        assert self.codec.folder is not None
        for name, size in self.files:
            try:
                os.unlink(os.path.join(self.codec.folder, name))
            finally:
                self.codec.release(size)
        self.files, self.oob = [], []


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
        index = self.out._file(memoryview(obj))
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
        index = self.out._file(flat)
        return ("mv", flat.tobytes() if index is None else index, fmt, shape)


class _Unpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, views: list[memoryview], buffers: list[memoryview]) -> None:
        super().__init__(stream, buffers=buffers)
        self.views = views

    def persistent_load(self, pid: Any) -> Any:
        kind, where = pid[0], pid[1]
        if kind == "mv":
            view = memoryview(where) if isinstance(where, bytes) else self.views[where]
            fmt, shape = pid[2], pid[3]
            return view if (fmt, shape) == ("B", (view.nbytes,)) else view.cast(fmt, shape)
        return {"bytes": bytes, "bytearray": bytearray}[kind](self.views[where])
