"""The driver's workers in a Redis run: its local worker processes (``processes/pool.py``)
and the workers that join from other hosts, and the driver's loop over them.

Workers on other hosts say ``hello`` when they join (with their agent and tags, ``fleet.py``),
keep a liveness key, and say ``bye`` when they leave. A worker that dies or leaves gives its
tasks back (``REQUEUE``) and the run goes on, unless it hosted a pinned instance, whose state
is lost: then the run fails, naming the instances. A task whose workers died
``--max-deliveries`` times is not tried again: the run fails naming its PE, or with
``--on-error dead-letter`` it is listed at the end. When the driver has heard nothing for a
second, and at the end, the audit (``audit.py``) checks its counts against the streams.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from dispel4py.engine.result import InstanceStats
from dispel4py.errors import WorkerDied
from dispel4py.mappings.base import ResultCollector
from dispel4py.mappings.processes.pool import (
    _Pool,
    _wait_all,
)
from dispel4py.mappings.processes.waiting import Waiter
from dispel4py.mappings.redis.audit import Auditor
from dispel4py.mappings.redis.fleet import WorkerOffer
from dispel4py.mappings.redis.heartbeat import heartbeats_of
from dispel4py.mappings.redis.keys import (
    Tampered,
)
from dispel4py.mappings.redis.payloads import rewrite_in_band
from dispel4py.mappings.redis.queues import RedisQueues
from dispel4py.mappings.redis.run import RedisRun, ReportReader

__all__ = ["RedisPool"]

_log = logging.getLogger("dispel4py.engine")

_TICK_S = 0.1
_QUIT_WAIT = 10.0
_HEARTBEAT_WAIT_S = 3.0  # a heartbeat process ends within one request (2 s timeout) of its worker
_NOBODY_CAME_S = 3.0


class RedisPool(_Pool):
    """Local worker processes and remote workers of one run, and the driver's loop."""

    def __init__(self, ctx: Any, plan: Any, queues: RedisQueues, tuning: Any, *, local: int) -> None:
        super().__init__(ctx, plan, queues, tuning)
        self.queues, self.local = queues, local
        self.remote: dict[int, float] = {}  # worker -> when it said hello
        self.remote_ever: set[int] = set()
        self.offers: dict[int, WorkerOffer] = {}  # joined workers: their agent and tags
        self.expected: set[int] = set(range(local))  # workers whose stats we wait for
        self.lost: set[int] = set()
        self.forged: list[tuple[str, str]] = []
        self.replayed: list[tuple[str, bytes]] = []  # copies of signed entries, dropped
        self.reader: ReportReader | None = None
        self.dropped: list[str] = []  # tasks given up (--on-error dead-letter), why
        self.ended_sent: set[int] = set()
        self.started = time.monotonic()
        self.waiting_said = False
        self.audit: Auditor | None = None
        self.rewritten = 0  # tasks in the arena rewritten in band for another host's worker

    def __enter__(self) -> RedisPool:
        return self

    def close(self) -> None:
        """Stop the local workers still running (``_Pool.close``), and wait for their heartbeat
        processes: a worker ended by a signal cannot stop its own, which ends a moment later
        (it deletes the worker's liveness key first); a run must not return before."""
        beating = heartbeats_of([w.process.pid for w in self.workers if w.process.exitcode is None])
        try:
            super().close()
            if _wait_all(beating, _HEARTBEAT_WAIT_S):
                _log.warning("a heartbeat process did not end %gs after its worker", _HEARTBEAT_WAIT_S)
        finally:
            for fd in beating:
                os.close(fd)

    def start(self, count: int | None = None) -> None:
        """Start the local workers (0 .. local-1), leaving the other slots to workers on
        other hosts."""
        super().start(self.local if count is None else count)

    def collect_run(
        self,
        collector: ResultCollector,
        reader: ReportReader,
        run: RedisRun,
        coordinator: Any,
        on_report: Callable[[int, str, Any], bool],
        tick: Callable[[], None] | None,
    ) -> list[InstanceStats]:
        """Relay reports until the coordinator has ended every PE and every worker that is
        still there has sent its stats; the first error is raised."""
        wait = Waiter().wait
        self.coordinator, self.reader = coordinator, reader
        self.audit = audit = Auditor(self, reader, coordinator)
        self.on_report = lambda worker, kind, body: self._on_report(worker, kind, body, on_report, run)
        listening = {w.link: i for i, w in enumerate(self.workers)}
        watching = {w.ended: i for i, w in enumerate(self.workers)}
        next_tick = time.monotonic()
        stopped = [] if collector.stopped_fd is None else [collector.stopped_fd]
        while not (coordinator.finished and self.expected <= self.done):
            ready_list = wait(
                [reader, *listening, *watching, *stopped], max(0.0, next_tick - time.monotonic())
            )
            if stopped and stopped[0] in ready_list:
                collector.check_stopped()  # the consumer of a streamed run has gone
                stopped.clear()  # it raised, unless the run goes on without a consumer
            for ready in ready_list:
                if ready is reader:
                    audit.heard()
                    for worker, message in reader.drain():
                        self._relay(worker, [message], collector)
                elif ready in watching:
                    worker = watching.pop(ready)
                    link = self.workers[worker].link
                    listening.pop(link, None)
                    self._relay(worker, link.read(drain=True), collector)
                    if worker not in self.done:
                        self._worker_gone(worker, self._how(worker))
                elif ready in listening:
                    self._relay(listening[ready], ready.read(), collector)
                    if ready.at_eof:
                        del listening[ready]
            if coordinator.end_sent:
                self._send_end()
            if time.monotonic() >= next_tick:
                run.keep_alive()
                audit.tick()
                self._check_remote()
                self._say_if_nobody_came()
                if tick is not None:
                    tick()
                next_tick = time.monotonic() + _TICK_S
            self.queues.send_commands()  # what the coordinator and the scaler said, at once
        audit.final(lambda got: self._relay_all(got, collector))
        self._quit_all()
        return self.stats

    def _relay_all(self, got: list[tuple[int, Any]], collector: ResultCollector) -> None:
        for worker, message in got:
            self._relay(worker, [message], collector)

    def _on_report(
        self, worker: int, kind: str, body: Any, chained: Callable[[int, str, Any], bool], run: RedisRun
    ) -> bool:
        if kind == "hello":
            _, host, pid, *offer = body  # offer: a host agent's process (redis/fleet.py)
            _log.info("worker %d joined from %s (pid %d)", worker, host, pid)
            self.offers[worker] = offer[0] if offer else WorkerOffer(host=host)
            self._shm_for(worker, maps_arena=len(offer) > 1 and offer[1] is True)
            run.add_keys(
                [self.queues.names.stream(self.queues.control_key(worker)), self.queues.names.alive(worker)]
            )
            self.remote[worker] = time.monotonic()
            self.remote_ever.add(worker)
            if self.coordinator.finished and self.expected <= self.done:
                self.queues.command(worker, ("Q",))
            else:
                self.expected.add(worker)
        elif kind == "bye":
            self._worker_gone(worker, "it left")
        elif kind == "inband":
            self._rewrite_in_band(*body)
        elif kind == "forged":
            self.forged.append(body)
        elif kind == "replayed":
            self._replayed(*body)
        elif kind == "dead":
            _, keys = body
            self._given_up(keys, f"worker {worker} found it idle for {self.queues.claim_idle_ms} ms")
        elif kind == "dropped":
            _, keys, text = body
            self._given_up(keys, text)
        else:
            return chained(worker, kind, body)
        return True

    def _shm_for(self, worker: int, *, maps_arena: bool) -> None:
        """A worker joined: if it cannot map the run's arena (another host's, ``payloads.py``),
        every worker writes large items in band from now on; a worker that joins after
        that is told so too."""
        payloads = self.queues.payloads
        if not payloads.maps_arena:
            return
        if not payloads.in_band and not maps_arena:
            payloads.in_band = True
            _log.info("worker %d cannot map this host's shared memory: large items go in band now", worker)
            for other in [*range(self.local), *self.remote]:
                self.queues.command(other, ("shm", "off"))
        if payloads.in_band:
            self.queues.command(worker, ("shm", "off"))

    def _rewrite_in_band(self, worker: int, key: int, entry_id: bytes) -> None:
        """A task in the arena reached a worker that cannot map it: in band for it."""
        if rewrite_in_band(self.queues, worker, key, entry_id):
            self.rewritten += 1
            _log.info(
                "a task of %s in shared memory was rewritten in band for worker %d",
                self.queues.labels[key],
                worker,
            )

    def _how(self, worker: int) -> str:
        code = self.workers[worker].process.exitcode
        return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"

    def _worker_gone(self, worker: int, how: str) -> None:
        """Give back a dead (or departed) worker's tasks; fail if it hosted pinned instances."""
        if worker in self.lost:
            return
        self.lost.add(worker)
        self.expected.discard(worker)
        self.remote.pop(worker, None)
        labels = self.queues.labels
        moved, dead = self.queues.requeue(f"w{worker}")
        doing = sorted({labels[k] for k in moved + dead})
        hosted = self.plan.hosted(worker) if worker < self.plan.num_workers else []
        if how == "it left":
            text = f"worker {worker} left"
        elif worker in self.remote_ever:
            text = f"worker {worker} is gone ({how})"
            with contextlib.suppress(Exception):  # if it only froze, it must not come back
                self.queues.command(worker, ("Q",))
        else:
            text = f"worker {worker} died ({how})"
        if doing:
            text += f" while running a task of {', '.join(doing)}"
        if hosted:
            pinned = ", ".join(f"{self.plan.pe_of(i)} (instance {i})" for i in hosted)
            raise WorkerDied(f"{text} hosting {pinned}: the state of a pinned instance cannot be recovered")
        if dead:
            self._given_up(dead, text)
        _log.warning("%s; %d task(s) go back to the queue, the run goes on", text, len(moved))
        self.coordinator.worker_lost(worker)

    def _given_up(self, keys: list[int], why: str) -> None:
        """Tasks delivered ``--max-deliveries`` times: the run fails, or with ``--on-error
        dead-letter`` they count as done and are listed at the end."""
        labels = sorted({self.queues.labels[k] for k in keys})
        if self.audit is not None:
            self.audit.given_up.update(keys)
        if not self.queues.dead_letter:
            raise WorkerDied(
                f"a task of {', '.join(labels)} was delivered {self.queues.max_deliveries} times "
                f"and every worker running it died ({why}); it is not tried again (--max-deliveries)"
            )
        for key in keys:
            self.dropped.append(why)
            self.coordinator.task_dropped(self.queues.pe_ids[key])

    def _send_end(self) -> None:
        for worker in self.expected - self.ended_sent:
            if worker >= self.plan.num_workers:  # the coordinator told the plan's workers
                self.queues.command(worker, ("end",))
            self.ended_sent.add(worker)

    def _say_if_nobody_came(self) -> None:
        """With no local worker the run waits for workers to join: say so, once."""
        if self.local or self.remote_ever or self.waiting_said:
            return
        if time.monotonic() - self.started < _NOBODY_CAME_S:
            return
        self.waiting_said = True
        run_id = self.queues.names.run_id
        _log.warning(
            "no worker has joined run %s yet (-n 0: the driver runs none); start one with: "
            "dispel4py worker --redis-url URL --run %s --key-file FILE [workflow]",
            run_id,
            run_id,
        )

    def _check_remote(self) -> None:
        if not self.remote:
            return
        pipe = self.queues.client.pipeline(transaction=False)
        workers = list(self.remote)
        for worker in workers:
            pipe.exists(self.queues.names.alive(worker))
        for worker, alive in zip(workers, pipe.execute()):
            grace = time.monotonic() - self.remote.get(worker, 0.0) < self.queues.claim_idle_ms / 1000
            if not alive and not grace:
                self._worker_gone(worker, f"no heartbeat for {self.queues.claim_idle_ms} ms")

    def _quit_all(self) -> None:

        for worker in [*range(len(self.workers)), *self.remote]:
            if worker not in self.lost:
                self.queues.command(worker, ("Q",))
        self.queues.send_commands()
        late = _wait_all([w.ended for i, w in enumerate(self.workers) if i not in self.lost], _QUIT_WAIT)
        if late:
            _log.warning("%d worker(s) still running %gs after the run; stopping them", len(late), _QUIT_WAIT)

    def _replayed(self, stream: str, idents: list[bytes], committed: bool) -> None:
        """Copies of signed entries, dropped. ``committed``: ``COMMIT`` refused a task as a
        copy of one committed before, which the driver must have seen done: if it has
        not, someone added its identity to the ``used`` set, and the task is lost."""
        done = self.reader.done if self.reader is not None else None
        for ident in idents:
            if committed and done is not None and ident not in done:
                raise Tampered(
                    f"a task of {stream} ({ident.decode()}) was refused as a copy of a task done "
                    f"before, but none was: someone added entries to {self.queues.names.used} on "
                    f"Redis at {self.queues.target.where}; the task is lost"
                )
            self.replayed.append((stream, ident))

    def report_forged(self) -> None:
        if self.replayed:
            streams = sorted({stream for stream, _ in self.replayed})
            _log.warning(
                "%d replayed Redis entr%s dropped (cop%s of signed entries whose identity was used "
                "before, in %s): someone else can write to this server; results are not affected",
                len(self.replayed),
                "y was" if len(self.replayed) == 1 else "ies were",
                "y" if len(self.replayed) == 1 else "ies",
                ", ".join(streams),
            )
        if self.forged:
            streams = sorted({stream for stream, _ in self.forged})
            _log.warning(
                "%d forged or unsigned Redis entr%s dropped unread (in %s): someone else can write "
                "to this server; results are not affected",
                len(self.forged),
                "y was" if len(self.forged) == 1 else "ies were",
                ", ".join(streams),
            )
