"""How tasks go back to the queues: the tasks of a dead worker, or of one that stalled past
the claim time (``REQUEUE``, ``redis/scripts.py``), and a failed task under ``--on-error
dead-letter`` (split into one task per item, retried, or given up to the dead-letter
stream). The giving-back half of ``RedisQueues`` (see ``redis/queues.py``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from dispel4py.mappings.redis.commit import Committing
from dispel4py.mappings.redis.keys import GROUP, redis_failures_are_transport_errors

__all__ = ["GivingBack"]


class GivingBack(Committing):
    """The giving-back methods of ``RedisQueues``; the attributes below are the queues' own."""

    shared: list[int]
    requeue_sha: str
    max_deliveries: int
    pe_ids: list[str]
    labels: list[str]

    @abstractmethod
    def _seal(self, key: int, task: Any) -> tuple[int, bytes, bytes, bytes]: ...

    def requeue(
        self, consumer: str | None, streams: Sequence[int] | None = None
    ) -> tuple[list[int], list[int]]:
        """Give back the tasks of a dead ``consumer`` (``None``: every task idle longer than
        the claim time, for this worker); ``(requeued keys, dead-lettered keys)``."""
        keys = list(self.shared if streams is None else streams)
        if not keys:
            return [], []
        mode, who = ("consumer", consumer) if consumer is not None else ("idle", self.consumer)
        moved, dead = self.client.evalsha(
            self.requeue_sha,
            1 + len(keys),
            self.names.dead,
            *(self.names.stream(k) for k in keys),
            GROUP,
            mode,
            who,
            self.claim_idle_ms,
            self.max_deliveries,
            *(self.fields[k] for k in keys),
        )
        return [int(k) for k in moved], [int(k) for k in dead]

    @redis_failures_are_transport_errors
    def retry_or_give_up(self, key: int, task: Any, error: Any) -> None:
        """``--on-error dead-letter``: a shared task raised (its outputs are dropped with its
        frame). Split it into one task per item, or retry it, or give it up."""
        frame = self.frames.pop()
        assert frame.key == key, (frame.key, key)
        if frame.stage:  # what it spilled is dropped too
            self.client.delete(frame.stage)
            frame.stage = ""
        port, items = task
        pe_id = self.pe_ids[key]
        self.payloads.release_puts(frame.puts)  # its outputs are dropped
        if port is not None and len(items) > 1:  # only the bad item should be retried
            # one task per item, each marked so that it is never merged with others again
            frame.puts = [self._seal(key, (port, [item], 1)) for item in items]
            done = self._merged(frame, ("task", (self.worker, pe_id, {pe_id: len(items)}, 0, 0.0)))
            self._commit(frame, [self._seal_report(done, frame.idents)])
            return
        _, dead = self.requeue(self.consumer, [key])
        if dead:
            self.payloads.release(frame.blocks)  # settled: in the dead-letter stream
            text = f"{self.labels[key]} with item {error.item_repr}: {error.error}"
            self.send_now(("dropped", (self.worker, [key], text)))
