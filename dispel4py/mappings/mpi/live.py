"""Live counters on ``mpi``: every rank samples its instances, rank 0 gathers them.

Only when rank 0 has a board (``Mapping.board``; it tells the others with the plan). The
samples travel on a communicator of their own (a ``Dup`` of the world), so they never
mix with the engine's data and control messages, and each rank's sampler thread sends
while its main thread runs PEs; this needs MPI's ``THREAD_MULTIPLE`` (mpi4py asks for it),
without which only rank 0's own instances are shown. Rank 0 receives in a thread that
polls with a short sleep (an idle rank must not spin) until every other rank has said it
is done (its last sample, then ``bye``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from dispel4py.observe.live import LiveBoard, Row, sampling

__all__ = ["MPILive", "live_supported"]

_log = logging.getLogger("dispel4py.engine")
_TAG = 12
_POLL_S = 0.05
_BYE_WAIT_S = 5.0  # safety net: how long rank 0 waits for the other ranks' last samples


def live_supported(MPI: Any) -> bool:
    """Whether sampler threads may send while the main thread uses MPI."""
    return bool(MPI.Query_thread() >= MPI.THREAD_MULTIPLE)


class MPILive:
    """Collective: every rank makes one, after the plan is shared."""

    def __init__(self, comm: Any, board: LiveBoard | None, every: float) -> None:
        self.comm = comm.Dup()
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.board, self.every = board, every
        self._byes = 0
        self._stop = threading.Event()
        self._receiver: threading.Thread | None = None

    @contextlib.contextmanager
    def sampling(self, rows: Callable[[], list[Row]]) -> Iterator[None]:
        """Sample this rank's instances while the body runs; rank 0 also receives."""
        if self.rank == 0:
            board = self.board
            send: Callable[[list[Row]], None] | None = None
            if board is not None:
                send = lambda sample: board.update(0, sample)  # noqa: E731
                self._receiver = threading.Thread(target=self._receive, name="dispel4py-live-rx", daemon=True)
                self._receiver.start()
            with sampling(rows, send, self.every):
                yield
            return
        with sampling(rows, self._send, self.every):
            yield
        self.comm.send(("bye", self.rank), dest=0, tag=_TAG)

    def _send(self, sample: list[Row]) -> None:
        self.comm.send(("rows", self.rank, sample), dest=0, tag=_TAG)

    def _receive(self) -> None:
        from mpi4py import MPI

        while self._byes < self.size - 1:
            message = self.comm.improbe(source=MPI.ANY_SOURCE, tag=_TAG)
            if message is None:
                if self._stop.is_set():
                    return
                time.sleep(_POLL_S)
                continue
            payload = message.recv()
            if payload[0] == "bye":
                self._byes += 1
            elif self.board is not None:
                self.board.update(payload[1], payload[2])

    def close(self) -> None:
        """Rank 0: wait (briefly) for the last samples of every rank, then stop receiving."""
        if self._receiver is None:
            return
        self._receiver.join(_BYE_WAIT_S)
        if self._receiver.is_alive():
            _log.debug("live counters: %d rank(s) sent no last sample", self.size - 1 - self._byes)
            self._stop.set()
            self._receiver.join()
        self._receiver = None
