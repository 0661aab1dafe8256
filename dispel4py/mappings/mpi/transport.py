"""Messages between MPI ranks for the ``mpi`` mapping (``mpi4py.util.pkl5``: pickle protocol
5, messages over 2 GiB work).

Data travel point to point (tag ``DATA``); results, stats and the end of the run go to rank 0
as control messages (tag ``CONTROL``), handled wherever rank 0 waits, so that they never
queue behind data. Waiting is a poll with a growing nap (at most ``MAX_NAP_S``), so that an
idle rank does not burn a core.
"""

from __future__ import annotations

import os
import time
from typing import Any

from dispel4py.engine.result import InstanceStats
from dispel4py.mappings.base import ResultBuffer, ResultCollector

__all__ = ["CONTROL", "DATA", "QUIT", "RESULT_SENDS", "MPITransport", "results_reporter"]

DATA, CONTROL = 10, 11
QUIT = ("Q",)
RESULT_SENDS = 2  # results batches a rank may have on their way to rank 0 while streaming
MAX_NAP_S = 0.001  # longest sleep between polls while idle: idle ranks must not spin


class MPITransport:
    """Point-to-point messages; rank 0 also takes the control messages of the run."""

    def __init__(self, comm: Any, collector: ResultCollector | None) -> None:
        from mpi4py.util import pkl5

        blocksize = os.environ.get("DISPEL4PY_MPI_BLOCKSIZE")  # exercise the >2 GiB path in tests
        if blocksize:
            pkl5._bigmpi.blocksize = int(blocksize)
        self.comm = pkl5.Intracomm(comm)
        self.collector = collector
        self.pending: list[Any] = []
        self.result_sends: list[Any] = []  # synchronous sends of results (streaming only)
        self.done: dict[int, list[InstanceStats]] = {}

    def send(self, worker: int, message: Any, tag: int = DATA) -> None:
        self.pending.append(self.comm.isend(message, dest=worker, tag=tag))
        if len(self.pending) > 64:
            self._progress()

    def send_results(self, batch: Any, bounded: bool) -> None:
        """Results to rank 0. ``bounded`` (a streamed run): synchronous sends, at most
        ``RESULT_SENDS`` unmatched, so a rank 0 held up by a slow consumer holds this rank
        up too, instead of MPI buffering every batch (docs/design.md)."""
        if not bounded:
            self.send(0, ("results", batch), tag=CONTROL)
            return
        while len(self.result_sends) >= RESULT_SENDS:
            self.result_sends.pop(0).wait()
        self.result_sends.append(self.comm.issend(("results", batch), dest=0, tag=CONTROL))

    def _progress(self) -> None:
        self.pending = [r for r in self.pending if not r.test()[0]]

    def recv(self) -> Any:
        """The next data message (control messages are handled on the way)."""
        while True:
            tag, payload = self._next()
            if tag != CONTROL:
                return payload

    def poll(self) -> Any:
        """The next data message if one has arrived, else None (never waits); control
        messages are handled on the way. Lets a rank take credits during a long drain."""
        while True:
            got = self._arrived()
            if got is None:
                return None
            tag, payload = got
            if tag != CONTROL:
                return payload

    def wait_for_all_done(self, size: int) -> None:
        while len(self.done) < size:
            self._next()

    def _next(self) -> tuple[int, Any]:
        """Wait for any message, polling with a growing nap so idle ranks do not spin."""
        nap = 0.0
        while True:
            got = self._arrived()
            if got is not None:
                return got
            self._progress()
            time.sleep(nap)
            nap = min(MAX_NAP_S, nap * 2 or 0.00002)

    def _arrived(self) -> tuple[int, Any] | None:
        """``(tag, payload)`` of a message that has arrived (a control message is handled
        here too), or None."""
        status = _status()
        message = self.comm.improbe(status=status)
        if message is None:
            return None
        payload = message.recv()
        tag = status.Get_tag()
        if tag == CONTROL:
            self._control(status.Get_source(), payload)
        return tag, payload

    def _control(self, source: int, payload: Any) -> None:
        kind = payload[0]
        if kind == "results" and self.collector is not None:
            for pe_id, output, items in payload[1]:
                self.collector.extend(pe_id, output, items)
        elif kind == "done":
            self.done[source] = payload[1]

    def finish(self) -> None:
        """Complete every send before the rank leaves."""
        for request in [*self.result_sends, *self.pending]:
            request.wait()
        self.pending, self.result_sends = [], []


def _status() -> Any:
    from mpi4py import MPI

    return MPI.Status()


def results_reporter(transport: MPITransport, streaming: bool) -> ResultCollector | ResultBuffer:
    """Rank 0 keeps collected outputs where the result is built; other ranks ship them to it."""
    if transport.collector is not None:
        return transport.collector
    return ResultBuffer(lambda batch: transport.send_results(batch, bounded=streaming))
