"""A worker's lineage records written by a writer process of its own (``bulkwriter.py``), so
that turning them into JSON and writing the files (most of what provenance costs: a
tiny-item record is about 1 KB) runs on another core while the run goes on.

The run sends each batch as it is (the pending tuples, marshalled: builtin values only)
through a pipe, and each instance's :class:`~.lineage_json.InstanceFormat` once, before
its first records. A full pipe makes the run wait: memory stays bounded on both sides.
``close`` ends the pipe and waits for the writer: when the run returns, the files are
complete. The writer ending with an error (a folder that cannot be written) is raised in
the run, by the next batch sent or by ``close``; a writer that cannot be started at all is
said in one warning and the records are written by this process instead
(:class:`~.store.BackgroundFileStore`).

The pipe is the writer's only link to the run: a process forked from this one (a worker of
a ``fork`` start method) closes its copy at once (``os.register_at_fork``), so the writer
sees the end of the pipe when this process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import os
import subprocess
import sys
import weakref
from typing import Any

from .lineage_json import Pending, Serialiser, lineage_texts

__all__ = ["WriterProcess", "start_writer"]

_log = logging.getLogger("dispel4py.provenance")
_PIPE_BYTES = 1 << 20  # a few batches in flight (Linux: F_SETPIPE_SZ; elsewhere the default)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = (  # -I -S: no site-packages, no environment; only this package's folder on the path
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from dispel4py.provenance.bulkwriter import main; sys.exit(main(sys.argv[2:]))"
)
_open_writers: weakref.WeakSet[WriterProcess] = weakref.WeakSet()
_fork_hook = False


def _forget_in_child() -> None:
    for writer in list(_open_writers):
        writer.forget()


class WriterProcess:
    """The run's end of one writer process (``file`` mode)."""

    def __init__(self, path: str, process: subprocess.Popen[bytes], fd: int) -> None:
        self.path = path
        self.process = process
        self.fd = fd  # the pipe's write end; -1 once closed
        self.announced: set[Any] = set()
        self.serialiser = Serialiser()  # a batch marshal cannot carry is JSON here
        self.failed = 0  # records JSON could not write (both processes), known at close

    def put_pending(self, pending: list[Pending], formats: dict[Any, Any]) -> None:
        """A batch of records; ``formats``: every instance's format (new ones are sent)."""
        if len(formats) != len(self.announced):
            for key, form in formats.items():
                if key not in self.announced:
                    self._send(marshal.dumps(("I", key, *form.args())))
                    self.announced.add(key)
        try:
            data = marshal.dumps(("B", pending))
        except ValueError:  # a value that is not builtin (a port object, say): JSON here
            data = marshal.dumps(("J", lineage_texts(pending, formats, self.serialiser)))
        self._send(data)

    def put(self, records: list[str]) -> None:
        """A batch of records already JSON."""
        self._send(marshal.dumps(("J", records)))

    def _send(self, data: bytes) -> None:
        if self.fd < 0:
            raise OSError(f"the provenance writer for {self.path} is closed")
        view = memoryview(len(data).to_bytes(8, "little") + data)  # bulkwriter.serve reads it
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except BrokenPipeError:
            self.close()  # raises the writer's error
            raise OSError(f"the provenance writer for {self.path} ended early") from None
        except BaseException:  # Ctrl-C mid-message: the writer keeps what came before it
            self.abandon()
            raise

    def abandon(self) -> None:
        """End the pipe in the middle of a message (the writer drops that one and ends)
        and wait for the writer; nothing more is sent."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self.process.communicate()

    def forget(self) -> None:
        """In a forked child: this pipe is the parent's."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
            self.process.returncode = 0  # never waited for here

    def close(self) -> None:
        """End the pipe and wait for the writer: its files are then complete."""
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        out, err = self.process.communicate()
        if self.process.returncode != 0:
            reason = err.decode(errors="replace").strip().splitlines()
            raise OSError(
                reason[-1]
                if reason
                else f"the provenance writer for {self.path} failed (exit status {self.process.returncode})"
            )
        self.failed = self.serialiser.failed + int(out.decode().strip() or 0)


def start_writer(path: str) -> WriterProcess | None:
    """A writer process for ``path``, or ``None`` (said once) if none can be started."""
    global _fork_hook
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, _PIPE_BYTES)
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOT, _ROOT, path, str(os.getpid())],
            stdin=read_fd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        os.close(write_fd)
        _log.warning(
            "the provenance writer process cannot start (%s): this process writes its records itself", exc
        )
        return None
    finally:
        os.close(read_fd)
    if not _fork_hook:
        os.register_at_fork(after_in_child=_forget_in_child)
        _fork_hook = True
    writer = WriterProcess(path, process, write_fd)
    _open_writers.add(writer)
    return writer
