"""How a worker takes its next task from the Redis streams (the taking half of
``RedisQueues``, see ``redis/queues.py``).

``TAKE`` (``redis/scripts.py``) takes the first task of the keys, in the engine's priority
order, and updates the counters in the same step; the commits of finished tasks travel in
the same round trip. With none, the worker waits in a blocking ``XREADGROUP``, which Redis
hands each new entry to one waiting worker. Forged entries are dropped unread; tasks idle
longer than ``--claim-idle-ms`` are reclaimed (``_reclaim``).
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dispel4py.dynamic.signing import Forged, Signer
from dispel4py.mappings.redis.keys import (
    BLOCK_MS,
    GROUP,
    RunNames,
    entries,
    redis_failures_are_transport_errors,
)
from dispel4py.mappings.redis.scripts import ADOPT

__all__ = ["Taking"]

_log = logging.getLogger("dispel4py.engine")


@dataclass
class _Frame:
    """A task being run: its entries (several tiny tasks may run as one), and what a shared
    task holds back until it is done."""

    key: int
    entries: list[bytes]
    shared: bool
    puts: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    reports: list[tuple[bytes, bytes]] = field(default_factory=list)
    size: int = 0


class Taking:
    """The taking methods of ``RedisQueues``; the attributes below are the queues' own."""

    client: Any
    names: RunNames
    signer: Signer
    instances: int
    fields: list[bytes]
    is_shared: frozenset[int]
    frames: list[_Frame]
    merge: dict[int, int]
    acks: list[tuple[str, bytes]]
    claim_idle_ms: int
    heart: Any
    target: Any
    next_reclaim: float
    take_sha: str
    give_back_sha: str
    worker: int

    @property
    def consumer(self) -> str:
        return f"w{self.worker}"

    # provided by RedisQueues
    @abstractmethod
    def _pipeline(self) -> Any: ...
    @abstractmethod
    def _execute(self, pipe: Any) -> list[Any]: ...
    @abstractmethod
    def _counted(self, counts: Any) -> None: ...
    @abstractmethod
    def _scope(self, key: int) -> bytes: ...
    @abstractmethod
    def send_now(self, message: Any) -> None: ...
    @abstractmethod
    def requeue(
        self, consumer: str | None, streams: Sequence[int] | None = None
    ) -> tuple[list[int], list[int]]: ...

    @redis_failures_are_transport_errors
    def take(self, keys: Sequence[int], timeout: float | None) -> tuple[int, Any] | None:
        """The first of ``keys`` with a task (``TAKE``); with none, wait in a blocking
        ``XREADGROUP``, which hands a new task to one waiting worker only (no herd)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        streams = [self.names.stream(k) for k in keys]
        fields = [b"" if k >= self.instances else self.fields[k] for k in keys]
        while True:
            if time.monotonic() >= self.next_reclaim and not self.is_shared.isdisjoint(keys):
                self._reclaim()
            found, got = self._take_once(keys, streams, fields)
            if got is not None:
                return got
            if found:  # a forged entry was dropped: look again at once
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            wait_ms = BLOCK_MS if left is None else max(1, min(BLOCK_MS, int(left * 1000)))
            wait_ms = min(wait_ms, max(1, self.claim_idle_ms // 2))
            wanted = dict.fromkeys(streams, ">")
            # as '<consumer>:b' until ADOPT counts the task as running: a worker killed in
            # between leaves a task that REQUEUE knows is still counted as queued
            reply = self.client.xreadgroup(GROUP, self.consumer + ":b", wanted, count=1, block=wait_ms)
            got = self._taken_blocking(keys, streams, reply)
            if got is not None:
                return got

    def _take_once(
        self, keys: Sequence[int], streams: list[str], fields: list[bytes]
    ) -> tuple[bool, tuple[int, Any] | None]:
        pipe = self._pipeline()
        counts = [self.merge.get(k, 1) for k in keys]
        args = (GROUP, self.consumer, *fields, *counts)
        pipe.evalsha(self.take_sha, 1 + len(keys), self.names.counters, *streams, *args)
        found, body, counters = self._execute(pipe)[-1]
        self._counted(counters)
        if not found:
            return False, None
        entries = [(entry_id, dict(zip(raw[::2], raw[1::2]))) for entry_id, raw in body]
        if len(entries) == 1:
            return True, self._open(keys[found - 1], *entries[0])
        return True, self._open_many(keys[found - 1], entries)

    def _open_many(self, key: int, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> tuple[int, Any] | None:
        """Several tiny tasks of one key, run as one: their items in one list, one frame
        holding every entry (one commit acknowledges them all). Tasks that cannot join the
        first (another input port, provided inputs, a retry of one item) go back to the
        queue; forged ones are dropped."""
        ids: list[bytes] = []
        port: Any = None
        items: list[Any] = []
        back = []
        alone = False
        for entry_id, values in entries:
            try:
                task = self.signer.loads(self._scope(key), values.get(b"m"), values.get(b"d"))
            except Forged as exc:
                self._drop(key, entry_id, str(exc))
                continue
            single = len(task) > 2 or task[0] is None
            if ids and (alone or single or task[0] != port):
                back.append(entry_id)
                continue
            if not ids:
                port, alone = task[0], single
            ids.append(entry_id)
            items.extend(task[1] if port is not None else [task[1]])
        if back:
            stream, pipe = self.names.stream(key), self.client.pipeline(transaction=False)
            for entry_id in back:
                pipe.evalsha(
                    self.give_back_sha,
                    2,
                    self.names.counters,
                    stream,
                    GROUP,
                    self.consumer,
                    self.fields[key],
                    entry_id,
                )
            pipe.execute()
        if not ids:
            return None
        self.frames.append(_Frame(key, ids, key in self.is_shared))
        return key, (port, items if port is not None else items[0])

    def _open(self, key: int, entry_id: bytes, values: dict[bytes, bytes]) -> tuple[int, Any] | None:
        """A taken entry's task or command (``None``: forged, dropped); a task gets a frame."""
        try:
            message = self.signer.loads(self._scope(key), values.get(b"m"), values.get(b"d"))
        except Forged as exc:
            self._drop(key, entry_id, str(exc))
            return None
        if key < self.instances:
            self.frames.append(_Frame(key, [entry_id], key in self.is_shared))
            message = message[:2]  # (port, items), without a retry's mark
        return key, message

    def _taken_blocking(self, keys: Sequence[int], streams: list[str], reply: Any) -> tuple[int, Any] | None:
        """The entry a blocking read handed to this worker, counted as taken (a command is
        acknowledged and deleted, as ``TAKE`` does). A read that found entries at once may
        hand over one per stream: the first in priority order is kept, the others given
        back, so that no task waits on a worker that will not run it now."""
        found = entries(reply)
        if not found:
            return None
        key_of = dict(zip(streams, keys))
        found.sort(key=lambda e: keys.index(key_of[e[0]]))
        pipe = self.client.pipeline(transaction=False)
        for n, (stream, entry_id, _) in enumerate(found):
            key = key_of[stream]
            if key >= self.instances:  # a command: acknowledged with the next round trip
                self.acks.append((stream, entry_id))
                continue
            args = (GROUP, self.consumer, self.fields[key], entry_id, int(n == 0))
            pipe.eval(ADOPT, 2, self.names.counters, stream, *args)
        adopted = pipe.execute() if len(pipe) else []
        stream, entry_id, values = found[0]
        if key_of[stream] < self.instances and not adopted[0]:
            return None  # given back meanwhile (this worker looked dead): look again
        return self._open(key_of[stream], entry_id, values)

    def _drop(self, key: int, entry_id: bytes, why: str) -> None:
        """A forged entry: acknowledged and deleted unread, counted, reported."""
        stream = self.names.stream(key)
        if key < self.instances:  # TAKE counted it as taken; it was never put
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(stream, GROUP, entry_id).xdel(stream, entry_id)
            pipe.hincrby(self.names.counters, b"r" + self.fields[key], -1)
            pipe.hincrby(self.names.counters, b"b" + self.fields[key], 1)
            pipe.execute()
        self.send_now(("forged", (stream, why)))

    def _reclaim(self) -> None:
        self.next_reclaim = time.monotonic() + self.claim_idle_ms / 2000
        if self.heart is not None:
            self.heart.check()
        moved, dead = self.requeue(None)
        if moved:
            _log.info(
                "worker %d gave back %d task(s) idle for %d ms", self.worker, len(moved), self.claim_idle_ms
            )
        if dead:
            self.send_now(("dead", (self.worker, dead)))
