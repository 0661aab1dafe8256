"""One warning per run for the records that could not be written as JSON.

Records are made in every worker process (``multi`` workers, MPI ranks, dynamic and Redis
workers), but the user should read one line, from the driver, at the end of the run:
"N provenance records could not be written as JSON". Each process that had such records
leaves its count as a small file in a folder private to the run (:class:`Tally`: a fresh
name under the system's temporary folder, chosen by the driver and carried to the workers
with the recorder); the driver adds them up after the run, says it once and removes the
folder. Nothing is written when every record could be written.

The driver makes the folder before the workers start (:meth:`Tally.open`) and removes it
when it reports. A worker that does not find it (on another host, a remote Redis worker;
or one that ends after the driver did) says its own count in a warning where it runs,
naming its host and process: said, never lost.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass, field

__all__ = ["Tally"]

_log = logging.getLogger("dispel4py.provenance")


def _message(count: int) -> str:
    plural = "" if count == 1 else "s"
    return (
        f"{count} provenance record{plural} could not be written as JSON: written with repr() "
        "of what could not (metadata or parameters)"
    )


@dataclass(frozen=True)
class Tally:
    """The run's folder of per-process counts (picklable)."""

    folder: str = field(
        default_factory=lambda: os.path.join(tempfile.gettempdir(), f"d4py-prov-tally-{uuid.uuid4().hex}")
    )

    def open(self) -> None:
        """Make the folder (in the driver, before the workers start). If it cannot be
        made, each process says its own count instead."""
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            _log.debug("no folder for the counts of unwritable records (%s): each process says its own", exc)

    def add(self, count: int) -> None:
        """This process's count (in a worker, when it ends)."""
        if count <= 0:
            return
        if not os.path.isdir(self.folder):
            where = f"host {socket.gethostname()}, process {os.getpid()}"
            _log.warning("%s (in the worker on %s)", _message(count), where)
            return
        try:
            name = os.path.join(self.folder, f"{os.getpid()}-{uuid.uuid4().hex}")
            with open(name + ".part", "w", encoding="ascii") as handle:
                handle.write(str(count))
            os.replace(name + ".part", name)  # the driver never reads half a count
        except OSError as exc:  # cannot leave it for the driver: said here, not lost
            _log.warning("%s (in process %d: %s)", _message(count), os.getpid(), exc)

    def report(self) -> int:
        """Add up the counts, say them in one warning, remove the folder (in the driver,
        after the run); returns the total."""
        total = 0
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return 0
        for name in names:
            if name.endswith(".part"):
                continue
            try:
                with open(os.path.join(self.folder, name), encoding="ascii") as handle:
                    total += int(handle.read() or 0)
            except (OSError, ValueError):
                continue
        shutil.rmtree(self.folder, ignore_errors=True)
        if total:
            _log.warning("%s", _message(total))
        return total
