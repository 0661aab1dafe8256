"""THE executor loop: runs the PE instances a plan places on one worker.

Every mapping runs this loop; a mapping only decides placement and supplies the transport.

* ``preprocess`` each hosted instance, feed provided inputs, then process inbox items one
  input per ``process`` call, routing what is returned or written.
* **End of stream**: an instance finishes when it has an end-of-stream marker from every
  (incoming edge, source instance) and its inbox is empty; then ``postprocess`` runs (its
  writes are delivered) and markers go downstream. No idle timeouts.
* **Batching**: items for other workers are buffered per destination instance and sent
  when the buffer is full or the worker is about to wait for input.
* **Bounded memory without deadlock**: a sender holds at most ``credits`` unacknowledged
  full batches per destination instance (a smaller batch takes a share of a credit, in
  eighths: ``flow.py``), and a receiver acknowledges a batch when it takes it into an
  inbox. A worker that waits for credit keeps receiving, so it never blocks its
  peers for long; what it receives is either processed at once (nested on its stack) or
  *held* unacknowledged. The rule that makes this deadlock-free: every instance has a
  *level*, its PE's position in the topological order, and the stack of running
  instances is kept strictly increasing in level (writes only go downstream, and a
  received batch is processed nested only if its instance's level is above the top of
  the stack). A batch is held only if its level is at or below the top. Then, if W waits
  for credit from instance T on W' and W' holds T's batch, W' itself is waiting for an
  instance whose level is above T's (the target of its top, whose level is above
  everything on its stack, including T). A chain of waits therefore climbs strictly in
  level and ends at a worker that acknowledges: no cycle, no deadlock. Before a worker
  blocks (for credit or for input) it releases every held batch whose level is now above
  its top, so the invariant holds at every blocking point. Local inboxes are drained
  inline when they reach ``local_limit``.
* **Live counters** (``live.py``, only when asked for): a thread reads ``live_rows()``
  while the loop runs. The loop itself adds nothing per item: an inbox being drained
  publishes its length when the drain starts (``draining``); nothing is appended to it
  until that drain ends (writes only go downstream, batches for it are held), so items done
  so far are that length less the inbox's length now.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from time import perf_counter
from typing import Any

from dispel4py.core import WRITER
from dispel4py.engine.calls import InstanceCalls
from dispel4py.engine.flow import CREDIT_UNITS, MessageFlow, Reporter, Transport
from dispel4py.engine.inbox import make_inbox_loop, single_input
from dispel4py.engine.plan import Plan
from dispel4py.engine.result import InstanceStats
from dispel4py.engine.tuning import Tuning
from dispel4py.engine.wiring import install_pe_write, make_emitter, make_handler, make_routes, remove_pe_write
from dispel4py.engine.writers import LocalWriter, Outbox, local_writers, make_writer

__all__ = ["Executor", "Transport", "Reporter", "Tuning"]

_log = logging.getLogger("dispel4py.engine")


class Executor(MessageFlow):
    def __init__(
        self,
        plan: Plan,
        worker: int,
        transport: Transport | None,
        reporter: Reporter,
        *,
        tuning: Tuning | None = None,
        where: str = "",
    ) -> None:
        tuning = tuning or Tuning()
        self.plan = plan
        self.worker = worker
        self.transport = transport
        self.reporter = reporter
        self.batch_size = tuning.batch_size
        self.local_limit = local_limit = tuning.local_limit
        self.batch_bytes = tuning.batch_bytes
        self.local_bytes = tuning.local_bytes
        self.results_limits = (tuning.results_limit, tuning.results_s)  # see Tuning.streaming
        self.where = where
        placement = plan.placement
        n = len(placement.pe_of)
        self.hosted = plan.hosted(worker)
        self.inboxes: list[deque | None] = [None] * n
        self.eos_left = [0] * n
        self.finished = [False] * n
        self.calls = calls = InstanceCalls(plan, worker, where, tuning.timings)
        self.active = calls.active
        self.stack = calls.stack
        self.level = calls.level
        self.stats = calls.stats
        self._call = calls.call
        self.credits = [tuning.credits * CREDIT_UNITS] * n  # in units: flow.MessageFlow._cost
        self.max_credits = tuning.credits * CREDIT_UNITS
        self.outboxes: dict[tuple[int, str], Outbox] = {}  # (target, port) -> batch being filled
        self.local_limits = [local_limit] * n
        self.held: dict[int, list[tuple[int, str, list[Any], int]]] = {}
        self.flush_interval = 0.05  # seconds an item may wait in a part-filled batch
        self._flush_by = [perf_counter() + self.flush_interval]  # shared with the outboxes
        self.pes: dict[int, Any] = calls.pes  # shared: a failure is saved with its PE
        self.draining: dict[int, int] = {}  # instance -> inbox length when its drain began
        self.debug = _log.isEnabledFor(logging.DEBUG)  # -vv: batches, credits, end of stream
        # provenance (engine/recording.py): None in a normal run, which then pays nothing
        self.recorder = tuning.recorder.open(plan, worker) if tuning.recorder is not None else None
        if self.recorder is not None:
            self.calls.unwrap = self.recorder.item_of
        # a bare inbox holds items alone (one connected input, no recorder or timings: inbox.py)
        self.ports: list[str | None] = [None] * n
        fast = self.recorder is None and not tuning.timings
        for iid in self.hosted:
            self.inboxes[iid] = deque()
            self.eos_left[iid] = plan.eos_expected(iid)
            calls.add(iid)
            if fast:
                self.ports[iid] = single_input({e.inp for e in plan.edges if e.dst == plan.pe_of(iid)})
        self.bare = [port is not None for port in self.ports]
        self.feeders: list[list[LocalWriter]] = [[] for _ in range(n)]  # local writers per inbox
        self._make_instances()
        self._make_outboxes()
        self.writers: dict[int, dict[str, Any]] = {iid: self._make_writers(iid) for iid in self.hosted}
        self.loops = {iid: self._make_loop(iid) for iid in self.hosted}
        if self.recorder is None:  # a recorder's writers keep the items' ids: GenericPE.write
            for iid in self.hosted:
                install_pe_write(self.pes[iid], self.writers[iid])

    # -- setup ---------------------------------------------------------------------------
    def _make_instances(self) -> None:
        """The first local instance of a PE is the plan's object, the others deep copies."""
        seen: set[str] = set()
        for iid in self.hosted:
            pe_id = self.plan.pe_of(iid)
            original = self.plan.pes[pe_id]
            pe = original if pe_id not in seen else copy.deepcopy(original)
            seen.add(pe_id)
            pe.rank = iid
            pe.instance_index = self.plan.placement.index_of[iid]  # 0..k-1 among the PE's instances
            self.pes[iid] = pe

    def _make_loop(self, iid: int) -> tuple[Any, list[Any]]:
        """The loop that runs the inbox of ``iid`` (``inbox.py``) and where it keeps a
        failing item."""
        pe, writers = self.pes[iid], self.writers[iid]
        emit = make_emitter(self.plan.pe_of(iid), writers)
        handler = make_handler(pe, writers, emit)
        if self.recorder is not None:
            handler = self.recorder.handler(iid, handler)
        handler = self.calls.timed(iid, handler)
        inbox = self.inboxes[iid]
        assert inbox is not None
        return make_inbox_loop(inbox, pe, writers, emit, handler, self.ports[iid])

    def _make_outboxes(self) -> None:
        """A batch for every (instance on another worker, input) a hosted instance writes to."""
        for e in self.plan.edges:
            if not any(self.plan.pe_of(i) == e.src for i in self.hosted):
                continue
            for target in self.plan.instances[e.dst]:
                if self.inboxes[target] is None and (target, e.inp) not in self.outboxes:
                    self.outboxes[(target, e.inp)] = Outbox(
                        target,
                        e.inp,
                        self.batch_size,
                        self.batch_bytes,
                        self._send_now,
                        self.flush_all,
                        self._flush_by,
                    )

    def _make_writers(self, iid: int) -> dict[str, Any]:
        pe = self.pes[iid]
        pe_id = self.plan.pe_of(iid)
        writers = {}
        recorder = self.recorder
        for output in pe.outputconnections:
            collected = (pe_id, output) in self.plan.collect
            writer = make_writer(
                make_routes(self.plan, self.worker, iid, output),
                self.reporter.result_list(pe_id, output) if collected else None,
                # recording: general writers, whose deliveries carry the items' ids
                local_inboxes=self.inboxes if recorder is None else [None] * len(self.inboxes),
                deliver=self.deliver if recorder is None else recorder.deliver(self.deliver),
                drain=self.drain,
                flush_results=self.reporter.flush_results,
                limit=self.local_limit,
                byte_limit=self.local_bytes,
                max_results=self.results_limits[0],
                results_s=self.results_limits[1],
                bare=self.bare,
                outboxes=self.outboxes if recorder is None else None,
            )
            writers[output] = writer
            for local in local_writers(writer):
                self.feeders[local.target].append(local)
        if recorder is not None:
            writers = recorder.wrap(iid, pe, writers)
        for output, writer in writers.items():
            pe.outputconnections[output][WRITER] = writer
        return writers

    # -- running ---------------------------------------------------------------------------
    def run(self) -> list[InstanceStats]:
        """Run every hosted instance to its end of stream; return their stats."""
        try:
            for iid in self.hosted:
                self._call(iid, "preprocess", self.pes[iid].preprocess)
            for iid in self.hosted:
                pe_id = self.plan.pe_of(iid)
                if pe_id in self.plan.inputs and self.plan.placement.index_of[iid] == 0:
                    self._feed(iid, self.plan.inputs[pe_id])
            self._loop()
            self.flush_all()
        finally:  # the records of a failed run too, before the driver learns it ended
            self._close_recorder()
        for iid in self.hosted:
            self.stats[iid].items_out = sum(w.count for w in self.writers[iid].values())
        return [self.stats[iid] for iid in self.hosted]

    def _close_recorder(self) -> None:
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            recorder.close()

    def _loop(self) -> None:
        unfinished = list(self.hosted)
        while unfinished:
            progressed = False
            if self.outboxes:
                self.flush_all()  # remote workers get their share before a long local drain
            for iid in unfinished:
                if self.inboxes[iid] or iid in self.held:
                    self.drain(iid)
                    progressed = True
                if self.eos_left[iid] <= 0 and not self.inboxes[iid] and iid not in self.held:
                    self._finish(iid)
                    progressed = True
            unfinished = [i for i in unfinished if not self.finished[i]]
            if unfinished and not progressed:
                self._wait()

    def _wait(self) -> None:
        if self.transport is None:
            waiting = [self.plan.pe_of(i) for i in self.hosted if not self.finished[i]]
            raise RuntimeError(f"dispel4py internal error: {waiting} wait for input that cannot come")
        self.flush_all()
        self.handle(self.transport.recv())

    def _feed(self, iid: int, provided: Any) -> None:
        emit = make_emitter(self.plan.pe_of(iid), self.writers[iid])
        pe, recorder = self.pes[iid], self.recorder
        process = None if recorder is None else recorder.source(iid, pe.process)
        self.calls.feed(iid, pe, emit, provided, process)

    def drain(self, iid: int) -> None:
        """Process the inbox of ``iid`` (no-op if it is already running on the stack)."""
        if self.active[iid]:
            return
        inbox, stats = self.inboxes[iid], self.stats[iid]
        loop, current = self.loops[iid]
        draining, feeders = self.draining, self.feeders[iid]
        assert inbox is not None

        def run_inbox() -> None:
            while True:
                draining[iid] = began = len(inbox)
                try:
                    loop()
                finally:  # nothing joins an inbox while it drains: its calls are what left it
                    del draining[iid]  # first: a live reader may undercount, never double
                    stats.calls += began - len(inbox)
                for writer in feeders:  # the inbox is empty: sample the first item of the next fill
                    writer.check = 1
                if self.calls.failure is not None:
                    raise self.calls.failure
                if iid not in self.held:
                    return
                self._release_held(iid)

        self._call(iid, "process", run_inbox, lambda: current[1], lambda: current[0])

    def _finish(self, iid: int) -> None:
        """``postprocess``, then end of stream downstream, as the instance (so that a
        wait for credit on the way follows the level rule)."""
        postprocess = self.pes[iid].postprocess
        if self.recorder is not None:
            postprocess = self.recorder.postprocess(iid, postprocess)

        def body() -> None:
            postprocess()
            self._send_end_of_stream(iid)

        if self.debug:
            _log.debug("worker %d: end of stream for %s (instance %d)", self.worker, *self._name(iid))
        self._call(iid, "postprocess", body)
        self.finished[iid] = True
        stats = self.stats[iid]
        _log.info(
            "%s (rank %d): Processed %d iteration%s.",
            stats.pe_id,
            iid,
            stats.calls,
            "" if stats.calls == 1 else "s",
        )

    def _send_end_of_stream(self, iid: int) -> None:
        pe_id = self.plan.pe_of(iid)
        for e in self.plan.edges:
            if e.src != pe_id:
                continue
            for target in self.plan.instances[e.dst]:
                if self.inboxes[target] is not None:
                    self.eos_left[target] -= 1
                else:
                    self._send_now(target, e.inp)
                    self._send(target, ("E", target, 1))

    def live_rows(self) -> list[tuple[int, int, int, float, int]]:
        """Counters of the hosted instances now (read by the live-counters thread): items
        in (with the part of a drain done so far), items out, busy seconds (with the calls
        still running), items queued (inbox and held batches)."""
        running = self.calls.busy_now()
        rows = []
        for iid in self.hosted:
            stats, inbox = self.stats[iid], self.inboxes[iid]
            queued = len(inbox) if inbox is not None else 0
            items_in = stats.calls
            began = self.draining.get(iid)
            if began is not None:
                items_in += max(0, began - queued)
            held = self.held.get(iid)
            if held:
                queued += sum(len(batch[2]) for batch in list(held))
            items_out = sum(w.count for w in list(self.writers[iid].values()))
            rows.append((iid, items_in, items_out, stats.busy_s + running.get(iid, 0.0), queued))
        return rows

    def close(self) -> None:
        """Remove the writers installed on the PE objects (they reference this executor);
        close the recorder (its last records are written)."""
        self._close_recorder()
        for pe in self.pes.values():
            remove_pe_write(pe)
            for output in pe.outputconnections.values():
                output.pop(WRITER, None)
