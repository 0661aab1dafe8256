"""How a worker takes its next task from the Redis streams (the taking half of
``RedisQueues``, see ``redis/queues.py``).

``TAKE`` (``redis/scripts.py``) takes the first task of the keys, in the engine's priority
order, and reads the queues' counts in the same step; the commits of finished tasks travel
in the same round trip. With none, the worker waits in a blocking ``XREADGROUP``, which
Redis hands each new entry to one waiting worker. Forged entries are dropped unread; copies
of a command, or of a task of a pinned instance, that this worker already ran are dropped
before they run (a pinned instance's state must not see an item twice; copies of shared
tasks are refused by ``COMMIT``); tasks idle longer than ``--claim-idle-ms`` are
reclaimed (``_reclaim``).
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dispel4py.dynamic.signing import Forged, Seen, Signer
from dispel4py.mappings.redis.keys import (
    BLOCK_MS,
    GROUP,
    RunNames,
    entries,
    redis_failures_are_transport_errors,
)
from dispel4py.mappings.redis.payloads import NotMapped, Payloads

__all__ = ["Taking"]

_log = logging.getLogger("dispel4py.engine")

# the queues' counts (XLEN and XPENDING of every queue: a few us per queue on the server) are
# read again by a take when older than this; a backlog asks for them when older too
COUNT_EVERY_S = 0.02


@dataclass
class _Frame:
    """A task being run: its entries (several tiny tasks may run as one), and what a shared
    task holds back until it is done."""

    key: int
    entries: list[bytes]
    shared: bool
    idents: list[bytes] = field(default_factory=list)
    puts: list[tuple[int, bytes, bytes, bytes]] = field(default_factory=list)
    reports: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)
    size: int = 0
    stage: str = ""  # the staging stream its early outputs went to, if any
    blocks: list[tuple[int, int]] = field(default_factory=list)  # its entries' shared memory


class Taking:
    """The taking methods of ``RedisQueues``; the attributes below are the queues' own."""

    client: Any
    names: RunNames
    signer: Signer
    instances: int
    fields: list[bytes]
    ran: Seen  # identities of the commands and pinned tasks this worker took
    is_shared: frozenset[int]
    frames: list[_Frame]
    merge: dict[int, int]
    share: int  # the workers taking from the shared queues
    acks: list[tuple[str, bytes]]
    claim_idle_ms: int
    counted_at: float  # when the queues' counts were read
    heart: Any
    target: Any
    next_reclaim: float
    take_sha: str
    give_back_sha: str
    worker: int
    payloads: Payloads

    @property
    def consumer(self) -> str:
        return f"w{self.worker}"

    # provided by RedisQueues
    @abstractmethod
    def _pipeline(self) -> Any: ...
    @abstractmethod
    def _execute(self, pipe: Any) -> list[Any]: ...
    @abstractmethod
    def _wire(self) -> Any: ...
    @abstractmethod
    def _counted(self, counts: Any) -> None: ...
    @abstractmethod
    def _scope(self, key: int) -> bytes: ...
    @abstractmethod
    def send_now(self, message: Any) -> None: ...
    @abstractmethod
    def flush(self) -> None: ...
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
        fields = [b"1" if k >= self.instances else b"" for k in keys]
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
            reply = self._wire().xreadgroup(GROUP, self.consumer, wanted, 1, wait_ms)
            got = self._taken_blocking(keys, streams, reply)
            if got is not None:
                return got

    def _take_once(
        self, keys: Sequence[int], streams: list[str], fields: list[bytes]
    ) -> tuple[bool, tuple[int, Any] | None]:
        pipe = self._pipeline()
        counts = [self.merge.get(k, 1) for k in keys]
        shares = [self.share if k in self.is_shared else 1 for k in keys]
        recount = time.monotonic() - self.counted_at > COUNT_EVERY_S
        args = (GROUP, self.consumer, len(keys), b"1" if recount else b"0", *fields, *counts, *shares)
        every = self.names.instance_streams if recount else ()  # read only to count (most takes do not)
        pipe.evalsha(self.take_sha, len(keys) + len(every), *streams, *every, *args)
        found, body, counted = self._execute(pipe)[-1]
        if counted:
            self._counted(counted)
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
        idents: list[bytes] = []
        blocks: list[tuple[int, int]] = []
        for entry_id, values in entries:
            task = self._verified(key, entry_id, values)
            if task is None:
                continue
            single = len(task) > 2 or task[0] is None
            if ids and (alone or single or task[0] != port):
                back.append(entry_id)
                continue
            if not self._fresh(key, entry_id, values):
                continue
            if not ids:
                port, alone = task[0], single
            ids.append(entry_id)
            idents.append(values[b"i"])
            blocks += Payloads.blocks(values.get(b"d"))
            items.extend(task[1] if port is not None else [task[1]])
        if back:
            stream, pipe = self.names.stream(key), self.client.pipeline(transaction=False)
            for entry_id in back:
                pipe.evalsha(self.give_back_sha, 1, stream, GROUP, self.consumer, entry_id)
            pipe.execute()
        if not ids:
            return None
        self.frames.append(_Frame(key, ids, key in self.is_shared, idents, blocks=blocks))
        return key, (port, items if port is not None else items[0])

    def _open(self, key: int, entry_id: bytes, values: dict[bytes, bytes]) -> tuple[int, Any] | None:
        """A taken entry's task or command (``None``: forged or a copy, dropped); a task
        gets a frame."""
        message = self._verified(key, entry_id, values)
        if message is None or not self._fresh(key, entry_id, values):
            return None
        if key < self.instances:
            blocks = Payloads.blocks(values.get(b"d"))
            self.frames.append(_Frame(key, [entry_id], key in self.is_shared, [values[b"i"]], blocks=blocks))
            message = message[:2]  # (port, items), without a retry's mark
        return key, message

    def _verified(self, key: int, entry_id: bytes, values: dict[bytes, bytes]) -> Any:
        """The entry's message if this run's key sealed it (for this stream and identity);
        else ``None``, dropped and reported. Also ``None`` for a task whose large buffers are
        in the arena of a host this worker is not on: left pending, the driver rewrites it
        in band (``payloads.py``)."""
        try:
            data = self.signer.check(
                self._scope(key), values.get(b"m"), values.get(b"d"), values.get(b"i") or b""
            )
            return self.payloads.loads(data)
        except Forged as exc:
            self._drop(key, entry_id, str(exc))
        except NotMapped:  # its payload is in the arena of another host: the driver rewrites it
            self.send_now(("inband", (self.worker, key, entry_id)))
        return None

    def _fresh(self, key: int, entry_id: bytes, values: dict[bytes, bytes]) -> bool:
        """False for a copy of a command or a pinned task this worker took already (dropped
        and reported): run once, whatever a stranger copies. (A copy of a shared task may
        run on another worker: ``COMMIT`` refuses it.)"""
        ident = values.get(b"i")
        if key in self.is_shared or self.ran.first_use(ident):
            return True
        self._drop(key, entry_id, "", copy=ident)
        return False

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
            if n:
                pipe.evalsha(self.give_back_sha, 1, stream, GROUP, self.consumer, entry_id)
        if len(pipe):
            pipe.execute()
        stream, entry_id, values = found[0]
        return self._open(key_of[stream], entry_id, values)

    def _drop(self, key: int, entry_id: bytes, why: str, copy: bytes | None = None) -> None:
        """A forged entry, or a copy of one this worker took already: acknowledged and
        deleted, counted, reported."""
        stream = self.names.stream(key)
        if key < self.instances:  # a command was acknowledged by TAKE already
            self.client.pipeline(transaction=False).xack(stream, GROUP, entry_id).xdel(
                stream, entry_id
            ).execute()
        if copy is None:
            self.send_now(("forged", (stream, why)))
        else:
            self.send_now(("replayed", (stream, [copy], False)))

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
