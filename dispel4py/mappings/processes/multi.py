"""``multi``: worker processes on this machine, one inbox queue per worker."""

from __future__ import annotations

from queue import Empty
from typing import Any

from dispel4py.mappings.processes.channels import Channels
from dispel4py.mappings.processes.pool import ProcessMapping
from dispel4py.mappings.processes.shm import ShmCodec

__all__ = ["MultiMapping"]


class _QueueTransport:
    def __init__(self, queues: list[Any], worker: int, codec: ShmCodec) -> None:
        self.queues = queues
        self.inbox = queues[worker]
        self.codec = codec

    def send(self, worker: int, message: Any) -> None:
        self.queues[worker].put(self.codec.dumps(message))

    def recv(self) -> Any:
        return self.codec.loads(self.inbox.get())

    def poll(self) -> Any:
        """The next message if one has arrived, else None (never waits)."""
        try:
            return self.codec.loads(self.inbox.get_nowait())
        except Empty:
            return None

    def close(self) -> None:
        for queue in self.queues:
            queue.close()
        for queue in self.queues:
            queue.join_thread()  # everything this worker sent is handed to the OS pipe


class QueueChannels(Channels):
    """An unbounded queue per worker; the executor's credits bound what is in flight."""

    def __init__(self, ctx: Any, workers: int) -> None:
        self.queues = [ctx.Queue() for _ in range(workers)]

    def open(self, worker: int) -> _QueueTransport:
        return _QueueTransport(self.queues, worker, self.codec)

    def send_from_driver(self, worker: int, message: Any) -> None:
        self.queues[worker].put(self.codec.dumps(message))

    def close(self) -> None:
        for queue in self.queues:
            queue.close()
            queue.cancel_join_thread()


class MultiMapping(ProcessMapping):
    name = "multi"
    summary = "worker processes on this machine (pipes)"

    def make_channels(self, ctx: Any, workers: int) -> Channels:
        return QueueChannels(ctx, workers)
