"""The driver's side of a Redis run: its keys, the reports stream, and the workers.

* **Keys** (:class:`RedisRun`): created before any worker starts (streams with their
  consumer group, the ``info`` hash that remote workers read, the driver's liveness key),
  each with a TTL that the driver renews while the run goes;
  deleted at the end, success or failure (``info`` first, so a worker joining at that
  moment sees the run gone and creates nothing).
* **Reports** (:class:`ReportReader`): a thread blocks in ``XREAD`` on the reports stream,
  checks each entry's MAC and that its identity was not used before (a copy is dropped and
  counted; a task reported done twice means that someone removed identities from the
  ``used`` set: the run stops, naming it), and hands the messages to the driver's loop through a pipe the
  loop waits on, with the workers' pipes and deaths: a report is seen as soon as it is
  written. Entries read are trimmed (every 256). A stop entry ends the thread without waiting.
* **Workers** (``RedisPool``, ``driver_pool.py``): the local worker processes of ``processes/pool.py``, plus
  workers on other hosts, which say ``hello`` when they join, keep a liveness key, and say
  ``bye`` when they leave. A worker that dies or leaves gives its tasks back (``REQUEUE``)
  and the run goes on, unless it hosted a pinned instance, whose state is lost: then the
  run fails, naming the instances. A task whose workers died ``--max-deliveries`` times is
  not tried again: the run fails naming its PE.
* **Audit** (``audit.py``): when the driver has heard nothing for a second, and at the
  end, it checks its counts against the streams in one atomic snapshot: entries someone
  deleted (``XDEL``/``XTRIM``) stop the run with one clear error instead of a hang. The
  reader counts the committed reports it reads per worker (``received``) and says how far
  it read (``read_to``) and how far the driver took (``drained_to``) for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from dispel4py.dynamic.signing import Forged, Seen
from dispel4py.errors import UsageError
from dispel4py.mappings.redis.audit import driver_token
from dispel4py.mappings.redis.keys import (
    BLOCK_MS,
    DRIVER_TTL_MS,
    GROUP,
    SOCKET_TIMEOUT_S,
    Tampered,
    entries,
    lost_error,
)
from dispel4py.mappings.redis.queues import RedisQueues
from dispel4py.mappings.redis.scripts import CREATE_INFO
from dispel4py.mappings.redis.server import connect
from dispel4py.mappings.redis.wire import Wire, open_wire

__all__ = ["RedisRun", "ReportReader"]

_log = logging.getLogger("dispel4py.engine")

_TRIM_EVERY = 256  # reports read before the driver trims them from the server
# a streamed run (dispel4py.stream) keeps few reports in the driver, so that a slow consumer
# leaves them on the server, where workers see them (REPORTS_HIGH, _redis_queues.py) and wait
STREAM_INBOX = 16  # reports the driver holds, read but not relayed
_ALIVE_EVERY_S = 1.0  # the driver's liveness key is renewed this often (it lasts DRIVER_TTL_MS)


class RedisRun:
    """The keys of one run, from creation to deletion (``with RedisRun(...) as run``)."""

    def __init__(self, queues: RedisQueues, *, slots: int, local: int, ttl_s: int) -> None:
        self.queues, self.slots, self.local, self.ttl_s = queues, slots, local, ttl_s
        names = queues.names
        self.streams = [names.stream(k) for k in range(queues.instances + slots)]
        self.keys = [
            *self.streams,
            names.dead,
            names.reports,
            names.used,
            names.info,
            names.workers,
            names.sent,
        ]
        self.token = driver_token(queues.signer, names)  # the driver's liveness key says who it is
        self.next_alive = self.next_expire = 0.0
        self.created = False
        self.status: Callable[[Any], None] | None = None  # writes the status snapshot (run_status.py)

    def publish_status_with(self, hook: Callable[[Any], None]) -> None:
        """From the next :meth:`keep_alive` on (at once, then once a second), ``hook(pipe)``
        adds the run's status snapshot to the same round trip."""
        self.status, self.next_alive = hook, 0.0

    def create(self, meta: dict[str, Any], plan_blob: bytes | None) -> None:
        queues, names = self.queues, self.queues.names
        client, signer = queues.client, queues.signer.for_run(b"")  # the run's nonce is in meta
        mac, data = signer.dumps(names.info.encode(), meta)
        if not client.eval(CREATE_INFO, 1, names.info, mac + data, self.ttl_s):
            raise UsageError(
                f"run '{names.run_id}' is already in progress on Redis at {queues.target.where} (or its "
                f"driver was killed: its keys expire within {self.ttl_s} s); choose another --run id"
            )
        self.created = True
        pipe = client.pipeline(transaction=True)  # every key is made with its TTL, at once
        # the worker counter before the plan: a worker that joins needs the plan, and the
        # counter's start (the local workers' ids) must be there when it registers
        pipe.set(names.workers, self.local)
        if plan_blob is not None:
            pipe.hset(names.info, "plan", signer.mac(names.info.encode() + b"plan", plan_blob) + plan_blob)
        for stream in [*self.streams, names.dead]:
            pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)
        pipe.xadd(names.reports, {"s": b""})  # the stream exists (and gets its TTL) from now on
        pipe.sadd(names.used, "-")  # the set too (no identity looks like this)
        pipe.hset(names.sent, "-", 0)  # and the reports each worker's commits wrote (audit.py)
        for key in self.keys:
            pipe.expire(key, self.ttl_s)
        pipe.set(names.driver, self.token, px=DRIVER_TTL_MS)
        pipe.execute()
        now = time.monotonic()
        self.next_alive, self.next_expire = now + _ALIVE_EVERY_S, now + self.ttl_s / 3

    def add_keys(self, keys: list[str]) -> None:
        """Keys a joining worker made (its control stream, its liveness key)."""
        self.keys += [k for k in keys if k not in self.keys]

    def keep_alive(self) -> None:
        now = time.monotonic()
        if now < self.next_alive:
            return
        pipe = self.queues.client.pipeline(transaction=False)
        pipe.set(self.queues.names.driver, self.token, px=DRIVER_TTL_MS)
        if self.status is not None:
            self.status(pipe)
        if now >= self.next_expire:
            for key in self.keys:
                pipe.expire(key, self.ttl_s)
            self.next_expire = now + self.ttl_s / 3
        pipe.execute()
        self.next_alive = now + _ALIVE_EVERY_S

    def destroy(self) -> None:
        """Delete every key of the run (idempotent; a failure here is logged, not raised)."""
        if not self.created:
            return
        self.created = False
        client, names = self.queues.client, self.queues.names
        try:
            try:
                cursor, found = self._delete_known()
            except Exception as exc:  # a connection the server closed (it restarted?): one more try
                if "Timeout" in type(exc).__name__:  # not a paused server: that would wait again
                    raise
                client.connection_pool.disconnect()
                cursor, found = self._delete_known()
            while cursor:  # the rest of the keyspace (a step at a time: a big server is not blocked)
                cursor, more = client.scan(cursor, match=names.prefix + "*", count=1000)
                found += more
            if found:
                client.delete(*found)
        except Exception as exc:
            _log.warning(
                "could not delete the keys of run %s on Redis at %s (they expire within %d s): %s",
                names.run_id,
                self.queues.target.where,
                self.ttl_s,
                exc,
            )

    def _delete_known(self) -> tuple[int, list[Any]]:
        """One round trip: ``info`` first (a worker joining now finds the run over), the keys
        the run knows, and the first step of a scan for any other key of the run."""
        names = self.queues.names
        pipe = self.queues.client.pipeline(transaction=False)
        pipe.delete(names.info)
        if self.keys:
            pipe.delete(*self.keys)
        pipe.scan(0, match=names.prefix + "*", count=1000)
        *_, (cursor, found) = pipe.execute()
        return int(cursor), list(found)


class ReportReader:
    """A thread reading the reports stream into a queue; :meth:`fileno` wakes the driver."""

    def __init__(self, queues: RedisQueues, *, bounded: bool = False) -> None:
        self.queues = queues
        self.scope = queues.names.reports.encode()
        self.seen = Seen()  # identities of the reports read
        self.done = Seen()  # identities of the tasks reported done
        self.inbox: deque[tuple[int, Any]] = deque()
        # for the audit (audit.py): the last entry id read, and that the driver took from the
        # inbox; the reports read per worker that its commits wrote; reads begun, and the
        # number of the last one that found nothing
        self.read_to = self.drained_to = b""
        self.received: Counter[str] = Counter()
        self.reads_begun = self.empty_read = 0
        self.limit = STREAM_INBOX if bounded else 0  # 0: read everything at once
        self.count, self.trim_every = (STREAM_INBOX, STREAM_INBOX) if bounded else (1000, _TRIM_EVERY)
        self.room = threading.Condition()
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.stopping = False
        self.client = connect(
            queues.target, socket_timeout=SOCKET_TIMEOUT_S, name="dispel4py-reports", lean=queues.lean
        )
        self.thread = threading.Thread(target=self._loop, name="dispel4py-reports", daemon=True)
        self.wire: Any = None

    def start(self) -> ReportReader:
        self.thread.start()
        return self

    def fileno(self) -> int:
        return self.read_fd

    def drain(self) -> list[tuple[int, Any]]:
        with contextlib.suppress(BlockingIOError):
            os.read(self.read_fd, 1 << 16)
        upto = self.read_to  # before taking: every entry up to it is in the inbox
        messages = []
        while self.inbox:
            messages.append(self.inbox.popleft())
        if self.limit:
            with self.room:
                self.room.notify()
        self.drained_to = upto
        return messages

    def _wait_for_room(self) -> None:
        """Bounded (streaming): read no more while the driver has not taken what it has."""
        with self.room:
            while self.limit and len(self.inbox) >= self.limit and not self.stopping:
                self.room.wait(0.5)

    def _loop(self) -> None:
        names = self.queues.names
        last = b"0-0"
        unread = 0  # entries read since the stream was last trimmed
        try:
            wire = self.wire = open_wire(self.client)
            while True:
                self._wait_for_room()
                self.reads_begun += 1
                begun = self.reads_begun
                got = entries(wire.xread({names.reports: last}, self.count, BLOCK_MS))
                if not got:
                    self.empty_read = begun
                    continue
                for _, entry_id, values in got:
                    last = entry_id
                    if b"s" in values:  # the creation marker, or the stop marker
                        if self.stopping:
                            return
                        continue
                    self.inbox.append(self._opened(values))
                self.read_to = last  # after the entries are in the inbox
                os.write(self.write_fd, b"x")
                unread += len(got)
                if unread >= self.trim_every:  # what was read leaves the server, a round trip each time
                    self.client.xtrim(names.reports, minid=last, approximate=False)
                    unread = 0
        except Exception as exc:
            if not self.stopping:
                self.inbox.append((-1, ("error", lost_error(self.queues.target, exc))))
                os.write(self.write_fd, b"x")

    def _opened(self, values: dict[bytes, bytes]) -> tuple[int, Any]:
        """``(worker, message)`` of a report; a forged one or a copy is reported as such."""
        names, ident = self.queues.names, values.get(b"i")
        try:
            worker, message, done, committed, listed = self.queues.signer.loads(
                self.scope, values.get(b"m"), values.get(b"d"), ident
            )
        except Forged as exc:
            return -1, ("forged", (names.reports, str(exc)))
        if not self.seen.first_use(ident):
            return -1, ("replayed", (names.reports, [ident], False))
        for task in done:
            if not self.done.first_use(task):
                error = Tampered(
                    f"task {task.decode()} was reported done twice: someone removed entries from "
                    f"{names.used} on Redis at {self.queues.target.where}; the results cannot be trusted"
                )
                return -1, ("error", error)
        for ident in listed:  # reports of results written before this one, in its order
            if ident not in self.seen:
                error = Tampered(
                    f"a report of results of worker {worker} never reached the driver: someone deleted "
                    f"entries from {names.reports} on Redis at {self.queues.target.where} (XDEL/XTRIM); "
                    "the results would be incomplete"
                )
                return -1, ("error", error)
        if committed:
            self.received[f"w{worker}"] += 1
        return worker, message

    def close(self) -> None:
        """Stop the thread and release the pipe: its connection shut under its blocked read
        (it wakes at once, without a round trip through a busy server), else a stop entry."""
        if self.thread.is_alive():
            self.stopping = True
            if isinstance(self.wire, Wire):
                self.wire.abort()
            else:  # redis-py's pipeline (no hiredis): a stop entry wakes it
                with contextlib.suppress(Exception):
                    self.queues.client.xadd(self.queues.names.reports, {"s": b"stop"})
            self.thread.join(timeout=1.0)
        self.client.close()
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
