"""The dynamic engine's task queues on Redis Streams (``dyn_redis``, ``dyn_auto_redis``, …).

The same interface as the multiprocess queues (``dynamic/tasks.py``), so the engine is the
same; what Redis adds is that workers may be anywhere, may join late and may die.

* **Keys.** Everything of a run lives under ``d4py:<run id>:`` (``RunNames``, ``redis/keys.py``): one stream
  per queue key (``q:<pe>:<index>`` per instance, ``ctl:<worker>`` per worker), one
  consumer group ``d4py`` on each, the ``used`` set (identities of the tasks committed), the
  reports stream, the dead-letter stream, the run's ``info`` hash. The driver creates and
  deletes them (``redis/run.py``); every key has a TTL as a safety net. Tasks queued and
  running per queue are read from the streams themselves (``COUNTS``), never from a
  counter a stranger could set.
* **A task is taken** (``redis/take.py``) by ``TAKE`` (``redis/scripts.py``): the first of the keys, in the
  engine's priority order, that has a task, one task at a time (so a worker never sits on
  tasks another could run; several only for a PE whose tasks are measured to be tiny,
  ``merge``), the queues' counts read in the same step. With none, the worker waits in a
  blocking ``XREADGROUP``, which Redis hands each new entry to one waiting worker; no
  clock decides anything. A task's commit travels with the next take (one round trip).
* **At-least-once, without duplicates.** What a *shared* task writes (its outputs and its
  results) is held until the task is done, then added with its report and the
  acknowledgement in one atomic ``COMMIT``, which also checks that the task is still this
  worker's and that no task of its identity was committed before (a copy): a worker that
  dies mid-task has added nothing, and its task is given back and run again elsewhere
  (``REQUEUE``, by the driver when it sees the death, or by any worker after
  ``--claim-idle-ms`` once the worker's liveness key has expired). The liveness key is
  kept by a heartbeat *process* (``heartbeat.py``) that the worker's GIL cannot
  starve, so a long task, even one long C call, is never taken from a live worker.
  A task whose held outputs pass the spill limit (64 MB) sends them to a staging
  stream of its own, which ``COMMIT`` moves to the queues or deletes: memory stays bounded
  and the task stays atomic. Pinned tasks write at once (pipelined): a pinned instance's
  state dies with its worker, so the run fails instead and there is nothing to replay.
  Each ``COMMIT`` also counts the reports it wrote in the ``sent`` hash, for the driver's
  audit of deleted entries (``redis/audit.py``).
* **Signed payloads.** Every entry is a pickle plus an HMAC bound to the run, its stream and
  its identity (``sender:sequence``, ``dynamic/signing.py``); an entry whose MAC is wrong is
  never unpickled: it is acknowledged, counted, reported to the driver, and dropped. A copy
  of a signed entry (a replay) is dropped the same way: by ``COMMIT`` (shared tasks), by
  the worker that took the original (commands, pinned tasks), by the driver (reports).
* **Reports** (task done, results, stats, ``hello``/``bye`` of remote workers) go to the
  driver through the reports stream, each as ``(worker, message)``; local workers send
  logs and errors on their pipe, as on ``multi``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from dispel4py.dynamic.layout import SHARED
from dispel4py.dynamic.signing import Idents, Seen, Signer
from dispel4py.engine.plan import Plan
from dispel4py.mappings.processes.channels import Channels, live_sender
from dispel4py.mappings.redis.commit import REPORTS_HIGH, Reporter
from dispel4py.mappings.redis.giving_back import GivingBack
from dispel4py.mappings.redis.heartbeat import Heartbeat
from dispel4py.mappings.redis.keys import (
    GROUP,
    SOCKET_TIMEOUT_S,
    TTL_S,
    RunNames,
    lost_error,
    redis_failures_are_transport_errors,
)
from dispel4py.mappings.redis.payloads import PLAIN_PAYLOADS
from dispel4py.mappings.redis.scripts import COMMIT, COUNTS, GIVE_BACK, REQUEUE, TAKE
from dispel4py.mappings.redis.server import RedisTarget, connect
from dispel4py.mappings.redis.take import COUNT_EVERY_S, _Frame
from dispel4py.mappings.redis.wire import open_wire
from dispel4py.mappings.redis.worker import RedisWorker  # imported before workers fork
from dispel4py.observe.live import sampling

# Reporter, REPORTS_HIGH: from commit.py; RunNames, GROUP, lost_error: from keys.py
__all__ = ["RedisQueues", "Reporter", "REPORTS_HIGH", "RunNames", "GROUP", "lost_error"]

_log = logging.getLogger("dispel4py.engine")

_PENDING_PUTS = 64  # pinned puts sent in one round trip
_PENDING_BYTES = 4 << 20
FAR_COUNT_S = 0.25  # counts a backlog far below its limit may have (COUNT_EVERY_S near it)
_SPILL_BYTES = 64 << 20  # a shared task holding more output than this stages it early
SPILL_ENV = "DISPEL4PY_SPILL_BYTES"  # internal: a smaller spill limit, for tests


class RedisQueues(GivingBack, Channels):
    """Made by the driver; each worker process (or ``dispel4py worker``) opens its own."""

    lean = False  # True: clients without redis-py's (lean_client.py; the mappings set it)

    def __init__(
        self,
        plan: Plan,
        target: RedisTarget,
        names: RunNames,
        signer: Signer,
        *,
        claim_idle_ms: int = 5000,
        max_deliveries: int = 3,
        dead_letter: bool = False,
        leftovers: Sequence[str] = (),
    ) -> None:
        self.target, self.names, self.signer = target, names, signer
        placement = plan.placement
        self.instances = len(placement.pe_of)
        self.pe_ids = list(placement.pe_of)
        self.labels = [f"{pe}[{placement.index_of[i]}]" for i, pe in enumerate(placement.pe_of)]
        self.shared = [i for i, w in enumerate(placement.worker_of) if w == SHARED]
        self.is_shared = frozenset(self.shared)
        self.claim_idle_ms, self.max_deliveries = claim_idle_ms, max_deliveries
        self.dead_letter = dead_letter
        self._leftovers = list(leftovers)
        self.spill_bytes = int(os.environ.get(SPILL_ENV) or _SPILL_BYTES)
        self.payloads = PLAIN_PAYLOADS  # the driver sets the run's (payloads.py)
        self.worker = -1
        self._runtime()

    def _runtime(self) -> None:
        self.client: Any = None
        self.wire: Any = None  # the hot path's own connection (wire.py), opened on first use
        self.link: Any = None
        self.frames: list[_Frame] = []
        self.pending: list[tuple[int, bytes, bytes, bytes]] = []
        self.commits: list[tuple[int, tuple[Any, ...]]] = []
        self.merge: dict[int, int] = {}  # tasks of a key taken at once (tiny tasks), default 1
        self.put_bytes: dict[int, int] = {}  # the size of the last task put for a key
        self.share = 1  # workers taking from the shared queues (a merged take's fair share)
        self.outbox: list[tuple[str, bytes, bytes, bytes]] = []  # the driver's commands not sent yet
        self.acks: list[tuple[str, bytes]] = []  # commands taken, acknowledged with the next round trip
        self.pending_bytes = 0
        self.unsent: Counter[int] = Counter()
        self.counts: dict[bytes, int] = {}
        self.counted_at = 0.0
        self.near = 1  # backlogs from this size on count as near the limit (set by the worker)
        self.next_reclaim = 0.0
        self.heart: Heartbeat | None = None
        self.idents = Idents()  # made again by open_client: a forked process has its own
        self.ran = Seen()
        self.stages = 0  # staging streams this process made
        self.unlisted: list[bytes] = []  # reports of results sent at once, not listed yet

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in (
            "merge",
            "put_bytes",
            "outbox",
            "acks",
            "client",
            "wire",
            "link",
            "frames",
            "pending",
            "commits",
            "unsent",
            "counts",
            "heart",
            "idents",
            "ran",
            "unlisted",
        ):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._runtime()

    # -- connecting ------------------------------------------------------------------------
    def open_client(self, name: str, *, load_scripts: bool = True) -> None:
        """Connect; ``load_scripts``: also load the scripts (once per run is enough: the
        driver does it, local workers call them by their SHA-1 at once)."""
        self.client = connect(self.target, socket_timeout=SOCKET_TIMEOUT_S, name=name, lean=self.lean)
        self.wire = None
        self.idents = Idents()
        texts = (TAKE, COMMIT, REQUEUE, GIVE_BACK, COUNTS)
        if load_scripts:
            scripts = self.client.pipeline(transaction=False)
            for text in texts:
                scripts.script_load(text)
            scripts.execute()
        shas = [hashlib.sha1(text.encode()).hexdigest() for text in texts]
        self.take_sha, self.commit_sha, self.requeue_sha, self.give_back_sha, self.counts_sha = shas
        self.scope = [self.names.stream(k).encode() for k in range(self.instances)]
        self.fields = [str(k).encode() for k in range(self.instances)]
        self.reports_scope = self.names.reports.encode()

    def leftover_paths(self) -> list[str]:
        return [*self._leftovers, *self.payloads.codec.leftover_paths()]

    # -- the interface, both sides ---------------------------------------------------------
    def control_key(self, worker: int) -> int:
        return self.instances + worker

    @redis_failures_are_transport_errors
    def put(self, key: int, task: Any) -> None:
        sealed = self._seal(key, task)
        self.put_bytes[key] = len(sealed[3])
        top = self.frames[-1] if self.frames else None
        if top is not None and top.shared:
            top.puts.append(sealed)
            top.size += len(sealed[3])
            if top.size > self.spill_bytes:  # bounded memory: staged, still all or nothing
                self._stage(top)
            return
        self.pending.append(sealed)
        self.unsent[key] += 1
        self.pending_bytes += len(sealed[3])
        if self.worker < 0 or len(self.pending) >= _PENDING_PUTS or self.pending_bytes >= _PENDING_BYTES:
            self._send_pending()

    def _seal(self, key: int, task: Any) -> tuple[int, bytes, bytes, bytes]:
        """``(key, identity, mac, data)`` of a task for ``key``, under a new identity (its
        large buffers in the arena, when readers of ``key`` may map it: ``payloads.py``)."""
        ident = self.idents.next()
        data = self.payloads.dumps(key, task)
        return (key, ident, self.signer.mac(self._scope(key), data, ident), data)

    def _stage(self, frame: _Frame) -> None:
        """Send a shared task's held outputs to its staging stream (``COMMIT`` moves them
        to their queues, or deletes them if the task is no longer this worker's)."""
        if not frame.stage:
            self.stages += 1
            frame.stage = self.names.stage(self.idents.sender, self.stages)
        pipe = self.client.pipeline(transaction=False)
        for key, ident, mac, data in frame.puts:
            pipe.xadd(frame.stage, {"s": self.names.stream(key), "i": ident, "m": mac, "d": data})
        pipe.expire(frame.stage, TTL_S)
        pipe.execute()
        frame.puts, frame.size = [], 0

    @redis_failures_are_transport_errors
    def backlog(self, key: int) -> int:
        """Tasks queued for ``key``, from counts at most ``COUNT_EVERY_S`` old when the
        backlog is near the worker's limit (``near``), else at most ``FAR_COUNT_S`` old: a
        worker writing to queues far below their limits does not pay a round trip per task
        to learn so."""
        age = time.monotonic() - self.counted_at
        if age > FAR_COUNT_S or (age > COUNT_EVERY_S and self.queued(key) >= self.near):
            self._send_pending()
        return self.queued(key)

    def queued(self, key: int) -> int:
        return self.counts.get(b"b%d" % key, 0) + self.unsent[key]

    def running(self, key: int) -> int:
        return self.counts.get(b"r%d" % key, 0)

    @redis_failures_are_transport_errors
    def total_backlog(self) -> int:
        self._send_pending()
        return sum(max(0, self.counts.get(b"b%d" % k, 0)) for k in range(self.instances))

    def _scope(self, key: int) -> bytes:
        return self.scope[key] if key < self.instances else self.names.stream(key).encode()

    def _send_pending(self) -> None:
        """Commits and pinned puts so far, in one round trip that also reads the counts."""
        pipe = self._pipeline()
        every = self.names.instance_streams
        pipe.evalsha(self.counts_sha, len(every), *every, GROUP)
        self._counted(self._execute(pipe)[-1])

    @redis_failures_are_transport_errors
    def flush(self) -> None:
        """Send the commits and pinned puts not sent yet."""
        if self.commits or self.pending or self.acks:
            self._execute(self._pipeline())

    def _pipeline(self) -> Any:
        """A batch starting with the commits not sent yet, then the pinned puts (sent on the
        hot path's own connection, ``wire.py``)."""
        pipe = self._wire().batch()
        for _, args in self.commits:
            pipe.evalsha(self.commit_sha, *args)
        for key, ident, mac, data in self.pending:
            pipe.xadd(self.names.stream(key), {"i": ident, "m": mac, "d": data}, nomkstream=True)
        for stream, entry_id in self.acks:
            pipe.xack(stream, GROUP, entry_id).xdel(stream, entry_id)
        return pipe

    def _wire(self) -> Any:
        if self.wire is None:
            self.wire = open_wire(self.client)
        return self.wire

    def _execute(self, pipe: Any) -> list[Any]:
        """Send it; warn of a commit refused (its task was given to another worker)."""
        commits, self.commits = self.commits, []
        self.pending, self.pending_bytes, self.unsent, self.acks = [], 0, Counter(), []
        results = pipe.execute()
        self.payloads.settled(results)
        for (key, _), done in zip(commits, results):
            if done == 1:
                continue
            if len(done) > 1:  # copies of tasks committed before: dropped
                copies = [bytes(ident) for ident in done[1:]]
                self.send_now(("replayed", (self.names.stream(key), copies, True)))
            else:
                _log.warning(
                    "a task of %s was given to another worker while worker %d ran it (no heartbeat "
                    "for %d ms?); this worker's outputs of it are dropped",
                    self.labels[key],
                    self.worker,
                    self.claim_idle_ms,
                )
        return results

    def _counted(self, counts: list[int]) -> None:
        """Tasks queued (``b<key>``) and running (``r<key>``), from ``COUNTS``."""
        self.counts = {}
        for key in range(len(counts) // 2):
            self.counts[b"b%d" % key], self.counts[b"r%d" % key] = counts[2 * key], counts[2 * key + 1]
        self.counted_at = time.monotonic()

    # -- the coordinator's side --------------------------------------------------------------
    def command(self, worker: int, message: Any) -> None:
        """Queued; the driver's loop sends what it queued in one round trip (``send_commands``)."""
        key, ident, mac, data = self._seal(self.control_key(worker), message)
        self.outbox.append((self.names.stream(key), ident, mac, data))

    def send_commands(self) -> None:
        if not self.outbox:
            return
        pipe = self.client.pipeline(transaction=False)
        for stream, ident, mac, data in self.outbox:
            pipe.xadd(stream, {"i": ident, "m": mac, "d": data})
        self.outbox = []
        pipe.execute()

    def send_from_driver(self, worker: int, message: Any) -> None:
        self.command(worker, message)

    def open(self, worker: int) -> Any:
        raise NotImplementedError("the dynamic engine takes tasks from the queues; see serve()")

    # -- a worker's side ---------------------------------------------------------------------
    def serve(self, plan: Plan, worker: int, link: Any, where: str, tuning: Any) -> None:
        """A local worker process: run the dynamic engine until the driver says quit."""
        self.link = link
        self.start_worker(worker, f"dispel4py-w{worker}")
        engine = RedisWorker(plan, worker, self, Reporter(self, tuning.streaming), tuning=tuning, where=where)
        try:
            with sampling(engine.live_rows, live_sender(link, worker), tuning.live_s):
                engine.run()
        except Exception as exc:
            error = lost_error(self.target, exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            engine.close()
            self.stop_worker()

    def start_worker(self, worker: int, name: str, *, remote: bool = False) -> None:
        """Connect as worker ``worker`` and start its heartbeat process (before any thread);
        ``remote``: a worker from elsewhere, which watches the driver, and has already
        connected and loaded the scripts to join (its connection is kept, renamed)."""
        self.worker = worker
        if remote:
            self.client.client_setname(name)
        else:
            self.open_client(name, load_scripts=False)
        self.heart = Heartbeat(
            self.target,
            self.names.alive(worker),
            self.claim_idle_ms,
            info_key=self.names.info,
            driver_key=self.names.driver if remote else None,
            run_id=self.names.run_id,
        )
        self.heart.start(self.client)

    def stop_worker(self) -> None:
        if self.heart is not None:
            self.heart.stop()
        if self.client is not None:
            self.client.close()

    def running_now(self, key: int) -> None:
        """Nothing to do: the frames say what runs (the driver learns it from the queues)."""
