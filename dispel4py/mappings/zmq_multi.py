"""``zmq_multi``: worker processes on this machine exchanging messages over ZeroMQ.

Each worker binds a PULL socket on an ``ipc://`` endpoint in a private temporary folder
(never a fixed TCP port, so two runs never collide) and PUSHes to its peers.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from typing import Any

from dispel4py.mappings._processes import Channels, ProcessMapping

__all__ = ["ZmqMultiMapping"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL


class _ZmqTransport:
    def __init__(self, endpoints: list[str], worker: int) -> None:
        import zmq

        self.zmq = zmq
        self.context = zmq.Context()
        self.endpoints = endpoints
        self.inbox = self.context.socket(zmq.PULL)
        self.inbox.setsockopt(zmq.RCVHWM, 0)
        self.inbox.bind(endpoints[worker])
        self.peers: dict[int, Any] = {}

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
        self._peer(worker).send(pickle.dumps(message, protocol=_PROTOCOL), copy=False)

    def recv(self) -> Any:
        return pickle.loads(self.inbox.recv(copy=False).buffer)

    def close(self) -> None:
        # Only after the driver's quit: all data and end-of-stream markers were received
        # by their workers already, so anything still queued is a late credit.
        for sock in self.peers.values():
            sock.close(linger=0)
        self.inbox.close(linger=0)
        self.context.term()


class ZmqChannels(Channels):
    def __init__(self, workers: int) -> None:
        self.folder = tempfile.mkdtemp(prefix="d4py-zmq-")
        self.endpoints = [f"ipc://{os.path.join(self.folder, f'w{i}')}" for i in range(workers)]
        self._driver: _ZmqDriver | None = None

    def open(self, worker: int) -> _ZmqTransport:
        return _ZmqTransport(self.endpoints, worker)

    def send_from_driver(self, worker: int, message: Any) -> None:
        if self._driver is None:
            self._driver = _ZmqDriver(self.endpoints)
        self._driver.send(worker, message)

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "endpoints": self.endpoints, "_driver": None}


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
