"""The writer process of a worker's lineage records (``file`` mode): turns the batches the
run sends it into the original's bulk JSON files, on another core while the run goes on.

Started by ``pipestore.py`` (one per process that records) as ``python -I -S -c ...``: it
imports only the standard library and ``lineage_json.py``, so it is up in a few ms. It
reads messages from its stdin until the end of the pipe, each its length (8 bytes, little
endian) and its ``marshal`` bytes:

* ``("I", key, *InstanceFormat.args())``: how the records of an instance are written;
* ``("B", [Pending, ...])``: a batch of records, written as one file;
* ``("J", [text, ...])``: a batch already JSON, written as one file.

It never outlives the run: the pipe ends when the run's process ends (however it ends), and
if the pipe is held open by something else (a process forked from the run), the run's
process having gone is noticed within a second and the writer leaves. Ctrl-C is the run's
to handle: the writer ignores it and finishes what it was sent. At the end it prints how
many records JSON could not write (the run counts them in its one warning); a file it
cannot write ends it with the error on stderr and exit status 1, which the run raises.
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import sys
import threading
import uuid
from typing import Any, BinaryIO

from .lineage_json import InstanceFormat, Serialiser, lineage_texts

__all__ = ["main", "write_bulk_file", "bulk_name"]

GRACE_S = 5.0  # how long the records already sent may take once the run's process is gone


def bulk_name(pid: int | str) -> str:
    """The original's name of a bulk file: ``bulk_<host>-<pid>-<uuid1>``."""
    return f"bulk_{socket.gethostname()}-{pid}-{uuid.uuid1()}"


def write_bulk_file(path: str, name: str, texts: list[str]) -> None:
    """One bulk file (a JSON list of records), written under a hidden name and renamed, so
    a reader never sees half a file."""
    hidden = os.path.join(path, f".{name}.part")
    with open(hidden, "w", encoding="utf-8") as handle:
        handle.write("[")
        handle.write(",".join(texts))
        handle.write("]")
    os.replace(hidden, os.path.join(path, name))


def _watch(parent: int) -> None:
    """Leave once the run's process is gone and the grace for its last records is over."""
    stop = threading.Event()
    while os.getppid() == parent:
        stop.wait(1.0)
    stop.wait(GRACE_S)
    os._exit(3)


def serve(stream: BinaryIO, path: str, pid: str) -> int:
    """Write every batch read from ``stream``; returns the count of records JSON could not
    write."""
    formats: dict[Any, InstanceFormat] = {}
    serialiser = Serialiser()
    while True:
        head = stream.read(8)
        body = stream.read(int.from_bytes(head, "little")) if len(head) == 8 else b""
        if not body or len(body) != int.from_bytes(head, "little"):
            return serialiser.failed  # the end (or the run died mid-message: that one is lost)
        try:
            message = marshal.loads(body)
        except (EOFError, ValueError, TypeError):
            return serialiser.failed  # not a message: the run's end of the pipe is gone
        kind = message[0]
        if kind == "I":
            formats[message[1]] = InstanceFormat(*message[2:])
        elif kind == "B":
            write_bulk_file(path, bulk_name(pid), lineage_texts(message[1], formats, serialiser))
        else:
            write_bulk_file(path, bulk_name(pid), message[1])


def main(argv: list[str]) -> int:
    """``argv``: the folder, the run process's pid (in the files' names)."""
    path, pid = argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch, args=(os.getppid(),), daemon=True).start()
    try:
        failed = serve(sys.stdin.buffer, path, pid)
    except OSError as exc:
        sys.stderr.write(f"cannot write provenance records to {path}: {exc}\n")
        return 1
    sys.stdout.write(f"{failed}\n")  # read by pipestore.WriterProcess.close
    return 0
