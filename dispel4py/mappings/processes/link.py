"""The private pipe from a worker to its driver: pickles behind an 8-byte length.

Our own framing rather than a multiprocess ``Connection``, for one reason: the driver must
be able to read *without blocking*. When a worker dies, what it managed to say (an error,
its last results) is already in the pipe; the driver reads it at once and reports the
death, even though EOF may never come (a process the PE forked inherits the write end and
may keep it open for as long as it lives). A frame cut short by the death is dropped.

The pipe's ends travel to the worker as :class:`FdHandle`, which multiprocess duplicates
into the child under every start method, as it does for a ``Connection``.
"""

from __future__ import annotations

import os
import pickle
import struct
import threading
from typing import Any

__all__ = ["FdHandle", "LinkReader", "LinkWriter", "make_link"]

_HEADER = struct.Struct("!Q")
_CHUNK = 1 << 20


class FdHandle:
    """A file descriptor that can be handed to a worker process (and closed once)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        # Only ever pickled while multiprocess starts a spawn/forkserver child; a forked
        # child simply inherits the descriptor with the same number.
        from multiprocess.reduction import DupFd

        return (_rebuild_handle, (DupFd(self.fd),))

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _rebuild_handle(dup: Any) -> FdHandle:
    return FdHandle(dup.detach())


def make_link() -> tuple[LinkReader, FdHandle]:
    """A new pipe: the driver's reader and the write end to hand to a worker."""
    read_fd, write_fd = os.pipe()
    return LinkReader(read_fd), FdHandle(write_fd)


class LinkWriter:
    """The worker's end: thread-safe, whole frames."""

    def __init__(self, handle: FdHandle) -> None:
        self.handle = handle
        self.lock = threading.Lock()

    def send_bytes(self, data: bytes) -> None:
        """One frame (a pickle); ``OSError`` (``BrokenPipeError``) if the driver no longer
        listens."""
        with self.lock:
            for part in (_HEADER.pack(len(data)), data):
                view = memoryview(part)
                while view:
                    view = view[os.write(self.handle.fd, view) :]

    def close(self) -> None:
        self.handle.close()


class LinkReader:
    """The driver's end, non-blocking: :meth:`read` returns the messages complete so far."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.buffer = bytearray()
        self.at_eof = False

    def fileno(self) -> int:
        return self.fd

    def read(self, drain: bool = False) -> list[Any]:
        """One read (or, with ``drain``, every byte available now), never waiting.

        ``drain`` is for a worker known to be dead: nothing more will come from it, so
        reading until the pipe is empty is bounded.
        """
        while not self.at_eof:
            try:
                chunk = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                self.at_eof = True
            self.buffer += chunk
            if not drain:
                break
        return self._frames()

    def _frames(self) -> list[Any]:
        messages = []
        start, size = 0, len(self.buffer)
        with memoryview(self.buffer) as view:
            while size - start >= _HEADER.size:
                (length,) = _HEADER.unpack_from(view, start)
                end = start + _HEADER.size + length
                if end > size:
                    break
                with view[start + _HEADER.size : end] as frame:
                    messages.append(pickle.loads(frame))
                start = end
        del self.buffer[:start]
        return messages

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)
