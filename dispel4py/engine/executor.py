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
  batches per destination instance, and a receiver acknowledges a batch when it takes it
  into an inbox. A worker that waits for credit keeps receiving, so it never blocks its
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
import pickle
from collections import deque
from itertools import repeat
from time import perf_counter
from typing import Any, Protocol

from dispel4py.core import WRITER
from dispel4py.engine.calls import InstanceCalls
from dispel4py.engine.plan import Plan
from dispel4py.engine.result import InstanceStats
from dispel4py.engine.tuning import Tuning
from dispel4py.engine.wiring import make_emitter, make_handler, make_routes, unpicklable_message
from dispel4py.engine.writers import SAMPLE_MASK, approx_size, make_writer, sized_limit
from dispel4py.errors import TransportError

__all__ = ["Executor", "Transport", "Reporter", "Tuning"]

_log = logging.getLogger("dispel4py.engine")


class Transport(Protocol):
    def send(self, worker: int, message: Any) -> None: ...
    def recv(self) -> Any: ...
    def poll(self) -> Any: ...  # the next message if one has arrived, else None


class Reporter(Protocol):
    def result_list(self, pe_id: str, output: str) -> list[Any]: ...
    def flush_results(self) -> None: ...


class Executor:
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
        self.credits = [tuning.credits] * n
        self.max_credits = tuning.credits
        self.outbufs: dict[tuple[int, str], list[Any]] = {}  # (target, port) -> items
        self.outlimits: dict[tuple[int, str], int] = {}  # (target, port) -> items per batch now
        self.local_limits = [local_limit] * n
        self.held: dict[int, list[tuple[int, str, list[Any], int]]] = {}
        self.flush_interval = 0.05  # seconds an item may wait in a part-filled batch
        self._flush_by = perf_counter() + self.flush_interval
        self.pes: dict[int, Any] = calls.pes  # shared: a failure is saved with its PE
        self.draining: dict[int, int] = {}  # instance -> inbox length when its drain began
        self.debug = _log.isEnabledFor(logging.DEBUG)  # -vv: batches, credits, end of stream
        # provenance (engine/recording.py): None in a normal run, which then pays nothing
        self.recorder = tuning.recorder.open(plan, worker) if tuning.recorder is not None else None
        if self.recorder is not None:
            self.calls.unwrap = self.recorder.item_of
        for iid in self.hosted:
            self.inboxes[iid] = deque()
            self.eos_left[iid] = plan.eos_expected(iid)
            calls.add(iid)
        self._make_instances()
        self.writers: dict[int, dict[str, Any]] = {iid: self._make_writers(iid) for iid in self.hosted}
        self.handlers = {iid: calls.timed(iid, self._make_handler(iid)) for iid in self.hosted}

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

    def _make_handler(self, iid: int) -> Any:
        writers = self.writers[iid]
        handler = make_handler(self.pes[iid], writers, make_emitter(self.plan.pe_of(iid), writers))
        return handler if self.recorder is None else self.recorder.handler(iid, handler)

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
            )
            for route in getattr(writer, "routes", ()) or ():
                for target in route.targets:
                    if self.inboxes[target] is None:
                        self.outbufs.setdefault((target, route.port), [])
                        self.outlimits[(target, route.port)] = self.batch_size
            writers[output] = writer
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
            if self.outbufs:
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
        inbox, handler, stats = self.inboxes[iid], self.handlers[iid], self.stats[iid]
        draining = self.draining
        assert inbox is not None
        current: list[Any] = [None, None]

        def run_inbox() -> None:
            while True:
                calls = 0
                draining[iid] = len(inbox)
                try:
                    while inbox:
                        current[0], current[1] = pair = inbox.popleft()
                        calls += 1
                        handler(*pair)
                finally:
                    del draining[iid]  # first: a live reader may undercount, never double
                    stats.calls += calls
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

    # -- moving messages -----------------------------------------------------------------
    def deliver(self, target: int, port: str, data: Any) -> None:
        inbox = self.inboxes[target]
        if inbox is not None:
            inbox.append((port, data))
            n = len(inbox)
            if n & SAMPLE_MASK == 1:
                self.local_limits[target] = sized_limit(data, n, self.local_limit, self.local_bytes)
            if n >= self.local_limits[target] and not self.active[target]:
                self.drain(target)
            return
        key = (target, port)
        buf = self.outbufs[key]
        buf.append(data)
        n = len(buf)
        if n & SAMPLE_MASK == 1:
            self.outlimits[key] = sized_limit(data, n, self.batch_size, self.batch_bytes)
        if n >= self.outlimits[key]:
            self._send_now(target, port)
        elif perf_counter() > self._flush_by:  # a slow producer's items must not wait
            self.flush_all()

    def _send(self, target: int, message: Any) -> None:
        assert self.transport is not None
        self.transport.send(self.plan.placement.worker_of[target], message)

    def _send_now(self, target: int, port: str) -> None:
        """Send the buffer for (``target``, ``port``), waiting for credit if needed."""
        key = (target, port)
        if not self.outbufs.get(key):
            return
        if self.debug and self.credits[target] <= 0:
            _log.debug(
                "worker %d: waits for credit from %s (instance %d) on worker %d",
                self.worker,
                *self._name(target),
                self.plan.worker_of(target),
            )
        cost = self._cost(self.outbufs[key])
        while self.credits[target] < cost:
            assert self.transport is not None
            self._release_processable()
            if self.credits[target] < cost:
                self.handle(self.transport.recv())
        items = self.outbufs[key]  # after the wait: a nested drain may have sent the buffer
        if not items:
            return
        self.outbufs[key] = []
        self.credits[target] -= cost
        if self.debug:
            _log.debug(
                "worker %d: batch of %d item%s to %s (instance %d) input '%s' on worker %d, %d credit%s left",
                self.worker,
                len(items),
                "" if len(items) == 1 else "s",
                *self._name(target),
                port,
                self.plan.worker_of(target),
                self.credits[target],
                "" if self.credits[target] == 1 else "s",
            )
        try:
            self._send(target, ("D", self.worker, target, port, items, cost))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TransportError(unpicklable_message(self.plan, target, port, items, exc)) from exc

    def flush_all(self) -> None:
        """Send every buffer that has credit, and pending results (never blocks).

        Inside a long drain, messages that have arrived are taken in first (never waiting):
        returned credits let a slow stage's items reach the next stage at once, not at the
        end of the drain; data follows the level rule as in a wait for credit."""
        self._flush_by = perf_counter() + self.flush_interval
        if self.stack and self.transport is not None:
            while (message := self.transport.poll()) is not None:
                self.handle(message)
        for (target, port), items in list(self.outbufs.items()):
            if items and self.credits[target] >= self._cost(items):
                self._send_now(target, port)
        self.reporter.flush_results()

    def handle(self, message: Any) -> None:
        kind = message[0]
        if kind == "D":
            _, src, iid, port, items, cost = message
            if self._must_hold(iid):
                self.held.setdefault(iid, []).append((src, port, items, cost))
                return
            inbox = self.inboxes[iid]
            assert inbox is not None
            inbox.extend(zip(repeat(port), items))
            self._send_credit(src, iid, cost)
            if self.stack:
                self.drain(iid)
        elif kind == "C":
            self.credits[message[1]] += message[2]
        elif kind == "E":
            self.eos_left[message[1]] -= message[2]
            if self.debug:
                _log.debug(
                    "worker %d: end-of-stream marker for %s (instance %d), %d to come",
                    self.worker,
                    *self._name(message[1]),
                    self.eos_left[message[1]],
                )
        else:
            raise RuntimeError(f"dispel4py internal error: unexpected message {kind!r}")

    def _send_credit(self, src: int, iid: int, cost: int) -> None:
        assert self.transport is not None
        self.transport.send(src, ("C", iid, cost))

    def _cost(self, items: list[Any]) -> int:
        """Credits a batch takes: 1, or more for a batch above ``batch_bytes`` (an item of
        20 MB), so in-flight memory is bounded by bytes too; never more than all credits."""
        if len(items) > 1:
            return 1  # several items fit the byte budget (the batch was cut by it)
        return max(1, min(self.max_credits, approx_size(items[0]) // self.batch_bytes))

    def _must_hold(self, iid: int) -> bool:
        """Whether a batch for ``iid`` must wait: processing it now would break the
        increasing levels of the stack (see the module docstring)."""
        return bool(self.stack) and self.level[iid] <= self.level[self.stack[-1]]

    def _release_processable(self) -> None:
        """Take in (and acknowledge) held batches that may now be processed, then process them."""
        if not self.held:
            return
        for iid in [i for i in self.held if not self._must_hold(i)]:
            if iid in self.held and not self._must_hold(iid):
                self._release_held(iid)
                if self.stack:
                    self.drain(iid)

    def _release_held(self, iid: int) -> None:
        inbox = self.inboxes[iid]
        assert inbox is not None
        for src, port, items, cost in self.held.pop(iid):
            inbox.extend(zip(repeat(port), items))
            self._send_credit(src, iid, cost)

    def _name(self, iid: int) -> tuple[str, int]:
        return self.plan.pe_of(iid), iid

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
            for output in pe.outputconnections.values():
                output.pop(WRITER, None)
