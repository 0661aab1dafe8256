"""``zmq_multi``: worker processes on this machine exchanging messages over ZeroMQ.

Each worker binds one PULL socket, its inbox, and PUSHes to its peers; the driver only
connects, to send the final quit. The driver names every inbox before any worker starts:

* Linux: abstract socket names, ``ipc://@d4py-<driver pid>-<64 random bits>-w<N>``. They
  live in the kernel (per network namespace), not on disk, so a run ended by any signal,
  even SIGKILL, leaves no file behind, and TMPDIR plays no part (no socket path limit).
  The pid and the random bits keep concurrent runs apart; a name that is taken anyway
  makes the bind fail (an abstract name has one owner), which ends the run with a
  ``TransportError``: never a shared inbox, never a hang.
* elsewhere: socket files ``w<N>`` in a private folder made by ``mkdtemp`` (so unique), and
  removed by the driver. A path too long for a socket address is refused before the folder
  is made, naming TMPDIR.

Never a fixed TCP port, so two runs never collide.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import tempfile
from typing import Any

from dispel4py.errors import TransportError
from dispel4py.mappings.processes.channels import Channels
from dispel4py.mappings.processes.pool import ProcessMapping
from dispel4py.mappings.processes.shm import ShmCodec

__all__ = ["ZmqMultiMapping"]

_log = logging.getLogger(__name__)
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_FOLDER_PREFIX = "d4py-zmq-"
_MKDTEMP_RANDOM = "X" * 8  # the length of mkdtemp's random suffix


def _abstract_names() -> bool:
    """Whether this platform has abstract socket names (Linux only)."""
    return sys.platform.startswith("linux")


def _run_name() -> str:
    """A name no other live run uses: the driver's pid plus 64 random bits.

    ``os.urandom``, not ``secrets``: the same bits, without importing hmac/OpenSSL (~3 ms
    of every run's start-up).
    """
    return f"d4py-{os.getpid()}-{os.urandom(8).hex()}"


def _private_folder(workers: int) -> str:
    """A new private folder for the socket files, if their paths fit in a socket address."""
    import zmq

    limit = int(getattr(zmq, "IPC_PATH_MAX_LEN", 103))
    parent = tempfile.gettempdir()
    longest = os.path.join(parent, _FOLDER_PREFIX + _MKDTEMP_RANDOM, f"w{workers - 1}")
    if len(longest) > limit:
        raise TransportError(
            f"zmq_multi cannot make its socket files under the temporary folder {parent}: "
            f"their paths would be {len(longest)} characters long, and this platform allows "
            f"{limit}; set TMPDIR to a folder with a path of at most "
            f"{limit - (len(longest) - len(parent))} characters"
        )
    return tempfile.mkdtemp(prefix=_FOLDER_PREFIX, dir=parent)


class _ZmqTransport:
    def __init__(self, endpoints: list[str], worker: int, codec: ShmCodec) -> None:
        import zmq

        self.zmq = zmq
        self.codec = codec
        self.context = zmq.Context()
        self.endpoints = endpoints
        self.peers: dict[int, Any] = {}
        self.inbox = self.context.socket(zmq.PULL)
        self.inbox.setsockopt(zmq.RCVHWM, 0)
        try:
            self.inbox.bind(endpoints[worker])
        except zmq.ZMQError as exc:
            self.close()
            raise TransportError(_bind_failure(zmq, worker, endpoints[worker], exc)) from exc

    def _peer(self, worker: int) -> Any:
        sock = self.peers.get(worker)
        if sock is None:
            sock = self.context.socket(self.zmq.PUSH)
            sock.setsockopt(self.zmq.SNDHWM, 0)  # the executor's credits bound what is in flight
            # a peer may not have bound its endpoint yet: retry after 2 ms, not zmq's 100 ms
            sock.setsockopt(self.zmq.RECONNECT_IVL, 2)
            sock.connect(self.endpoints[worker])
            self.peers[worker] = sock
        return sock

    def send(self, worker: int, message: Any) -> None:
        self._peer(worker).send(self.codec.dumps(message), copy=False)

    def recv(self) -> Any:
        return self.codec.loads(self.inbox.recv(copy=False).buffer)

    def poll(self) -> Any:
        """The next message if one has arrived, else None (never waits)."""
        try:
            return self.codec.loads(self.inbox.recv(self.zmq.NOBLOCK, copy=False).buffer)
        except self.zmq.Again:
            return None

    def close(self) -> None:
        # Only after the driver's quit: all data and end-of-stream markers were received
        # by their workers already, so anything still queued is a late credit.
        for sock in self.peers.values():
            sock.close(linger=0)
        self.peers = {}
        self.inbox.close(linger=0)
        self.context.term()


def _bind_failure(zmq: Any, worker: int, endpoint: str, exc: Any) -> str:
    text = f"worker {worker} cannot bind its ZeroMQ endpoint {endpoint}: {zmq.strerror(exc.errno)}"
    if exc.errno == zmq.EADDRINUSE:
        text += " (another process holds this name; run the workflow again)"
    return text


class ZmqChannels(Channels):
    """The workers' inbox endpoints; the driver's PUSH sockets (made on first use)."""

    def __init__(self, workers: int) -> None:
        self.folder: str | None = None
        if _abstract_names():
            base = f"ipc://@{_run_name()}-"
        else:
            self.folder = _private_folder(workers)
            base = f"ipc://{self.folder}{os.sep}"
        self.endpoints = [f"{base}w{i}" for i in range(workers)]
        self._driver: _ZmqDriver | None = None

    def open(self, worker: int) -> _ZmqTransport:
        return _ZmqTransport(self.endpoints, worker, self.codec)

    def send_from_driver(self, worker: int, message: Any) -> None:
        if self._driver is None:
            self._driver = _ZmqDriver(self.endpoints)
        self._driver.send(worker, message)

    def close(self) -> None:
        """Idempotent; called once the workers are gone."""
        if self._driver is not None:
            self._driver.close()
            self._driver = None
        if self.folder is not None:
            _remove_folder(self.folder)
            self.folder = None

    def __getstate__(self) -> dict[str, Any]:
        # a worker's copy only opens endpoints: the folder stays the driver's to remove
        return {"folder": None, "endpoints": self.endpoints, "_driver": None, "codec": self.codec}


def _remove_folder(folder: str) -> None:
    # a leftover socket file must not hide the run's own outcome (close runs in a finally)
    try:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)
    except OSError as exc:
        _log.warning("zmq_multi could not remove its socket folder %s: %s", folder, exc)


class _ZmqDriver:
    def __init__(self, endpoints: list[str]) -> None:
        import zmq

        self.context = zmq.Context()
        self.socks: dict[int, Any] = {}
        self.endpoints = endpoints
        self.zmq = zmq

    def send(self, worker: int, message: Any) -> None:
        sock = self.socks.get(worker)
        if sock is None:
            sock = self.context.socket(self.zmq.PUSH)
            sock.connect(self.endpoints[worker])
            self.socks[worker] = sock
        sock.send(pickle.dumps(message, protocol=_PROTOCOL))

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close(linger=1000)
        self.context.term()


class ZmqMultiMapping(ProcessMapping):
    name = "zmq_multi"
    summary = "worker processes on this machine (ZeroMQ)"

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument("-t", "--topic", default=None, help="accepted for compatibility (unused)")
        parser.add_argument(
            "-ct", "--consumer-timeout", type=int, default=None, help="accepted for compatibility (unused)"
        )

    def make_channels(self, ctx: Any, workers: int) -> Channels:
        return ZmqChannels(workers)
