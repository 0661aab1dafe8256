"""The dynamic worker: takes tasks from the queues and runs them, on any mapping of the family.

* **What it runs**: its pinned instances (``preprocess`` when it starts) and, on demand, a
  copy of each shared PE it gets a task for (made on the first task, ``preprocess``
  before its first item). Tasks of its pinned instances come first, then shared tasks:
  the PE with the most queued tasks per worker already running it first (so one slow PE
  cannot hold every worker while another waits), the most downstream on a tie, which
  keeps the pipeline draining and memory low.
* **What it writes** goes through the same routes and writers as the static engine into
  per-(destination, port) buffers; a buffer becomes a task when it holds the task size of
  its PE (sized from the measured cost per item to ~20 ms of work), reaches
  the byte budget, or has waited ``flush_interval``. Buffers are flushed before every
  report, and every report carries the tasks queued since the previous one
  (``tasks.py``), so the coordinator's counts are exact.
* **Bounded memory without deadlock**: before queueing under a key whose backlog is at
  its limit, the worker *helps*: it runs a task nested, taken only from keys whose level
  is above the top of its stack (as in the static executor, ``calls.py``), and when there
  is none it waits briefly for one. The key it waits on is downstream of what runs, so a
  shared key always offers a task to take; a pinned key on another worker is served by
  that worker, which is either running or waiting on a key of a higher level still. Waits
  therefore climb in level and end: no cycle. Structural commands (``post``, ``end``,
  quit) wait until the stack is empty.
"""

from __future__ import annotations

import copy
import logging
import pickle
from collections import Counter
from collections.abc import Iterable
from time import perf_counter
from typing import Any

from dispel4py.core import WRITER
from dispel4py.engine.calls import InstanceCalls
from dispel4py.engine.plan import Plan
from dispel4py.engine.result import InstanceStats
from dispel4py.engine.tuning import Tuning
from dispel4py.engine.wiring import make_emitter, make_handler, make_routes, unpicklable_message
from dispel4py.engine.writers import SAMPLE_MASK, make_writer, sized_limit
from dispel4py.errors import TransportError

from .fusion import Fusing
from .layout import SHARED
from .tasks import WorkerQueues

__all__ = ["DynamicWorker", "TARGET_TASK_S"]

_log = logging.getLogger("dispel4py.engine")

TARGET_TASK_S = 0.02  # aim at this much work per task once a PE's cost is measured
_MAX_NAP_S = 0.005
_DEFERRED = ("post", "end", "Q")


class DynamicWorker(Fusing):
    target_task_s = TARGET_TASK_S  # seconds of work per task, once a PE's cost is known

    def __init__(
        self,
        plan: Plan,
        worker: int,
        queues: WorkerQueues,
        reporter: Any,
        *,
        tuning: Tuning | None = None,
        where: str = "",
    ) -> None:
        self.plan, self.worker, self.queues, self.reporter = plan, worker, queues, reporter
        self.tuning = tuning = tuning or Tuning()
        placement = plan.placement
        self.calls = InstanceCalls(plan, worker, where)
        self.level = self.calls.level
        by_level = sorted(range(len(placement.pe_of)), key=lambda i: -self.level[i])
        self.pinned_keys = [i for i in by_level if placement.worker_of[i] == worker]
        self.shared_keys = [i for i in by_level if placement.worker_of[i] == SHARED]
        self.control = queues.control_key(worker)
        self.backlog_limit = tuning.credits * max(1, plan.num_workers)
        self.parked = False
        self.pes: dict[int, Any] = self.calls.pes  # shared: a failure is saved with its PE
        self.used: set[str] = set()  # PEs whose plan object is in use here
        self.handlers: dict[int, Any] = {}
        self.emitters: dict[int, Any] = {}
        self.writers: dict[int, dict[str, Any]] = {}
        self.sizes = {pe: 1 for pe in plan.pes}  # items per task: small until measured
        self.cost: dict[str, float] = {}  # seconds per item, measured here
        self.outbufs: dict[tuple[int, str], list[Any]] = {}
        self.outlimits: dict[tuple[int, str], int] = {}
        self.created: Counter[str] = Counter()
        self.deferred: list[Any] = []
        self.flush_interval = 0.05
        self._flush_by = perf_counter() + self.flush_interval
        self._no_inboxes: list[Any] = [None] * len(placement.pe_of)
        self.running = -1  # the key whose task runs (innermost)
        self.held: set[int] = set()  # shared keys this worker ran a queued task of (fusion.py)
        self.debug = _log.isEnabledFor(logging.DEBUG)  # -vv: a line per task
        self.helping = 0  # depth of _make_room: structural commands wait until it is 0
        # provenance (engine/recording.py): None in a normal run, which then pays nothing
        self.recorder = tuning.recorder.open(plan, worker) if tuning.recorder is not None else None
        if self.recorder is not None:
            self.calls.unwrap = self.recorder.item_of

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Serve tasks and commands until the coordinator says quit."""
        self.start_fusing(self.shared_keys, allowed=self.recorder is None)
        pinned = list(reversed(self.pinned_keys))  # upstream first, as the static engine does
        for iid in pinned:  # every object first: copies are made before any preprocess
            self._ensure(iid, preprocess=False)
        for iid in pinned:
            self.calls.call(iid, "preprocess", self.pes[iid].preprocess)
        while True:
            if self.deferred:
                message = self.deferred.pop(0)
                if self._command(message):
                    return
                continue
            keys = [
                self.control,
                *self.pinned_keys,
                *([] if self.parked else self._by_need(self.shared_keys)),
            ]
            got = self.queues.take(keys, None)
            if got is None:
                continue
            key, body = got
            if key == self.control:
                if self._command(body):
                    return
            else:
                self._run_task(key, body)
            got = body = None  # a task's items go now, not when the next one comes (shm blocks)

    def live_rows(self) -> list[tuple[int, int, int, float, int]]:
        """Counters of the local instances and copies now, for the live-counters thread
        (``live.py``); what is queued is counted by the coordinator."""
        running = self.calls.busy_now()
        rows = []
        for iid, stats in list(self.calls.stats.items()):
            items_out = sum(w.count for w in list(self.writers.get(iid, {}).values()))
            rows.append((iid, stats.calls, items_out, stats.busy_s + running.get(iid, 0.0), 0))
        return rows

    def stats(self) -> list[InstanceStats]:
        for iid, writers in self.writers.items():
            self.calls.stats[iid].items_out = sum(w.count for w in writers.values())
        return list(self.calls.stats.values())

    def _command(self, message: Any) -> bool:
        """Carry out a coordinator command; True when the worker must quit."""
        kind = message[0]
        if kind in _DEFERRED and (self.calls.stack or self.helping):
            self.deferred.append(message)
        elif kind == "post":
            self._postprocess(message[1])
        elif kind == "end":
            self._close_recorder()  # its records are written before the run counts as done
            self.reporter.flush_results()
            self.queues.report(("done", self.stats()))
        elif kind == "Q":
            return True
        elif kind == "park":
            self.parked = True
        elif kind == "wake":
            self.parked = False
        elif kind == "sizes":
            self.sizes.update(message[1])
        return False

    def _by_need(self, keys: Iterable[int]) -> list[int]:
        """Shared keys in the order this worker should look at them: first those no worker
        is on, then those with the most queued tasks per worker already on them; ties go
        downstream first. So a slow PE with a long backlog cannot keep every worker while a
        cheap PE's few (large) tasks wait: its failures, outputs and downstream work are not
        held back until the slow PE is done."""
        queues = self.queues

        def need(k: int) -> tuple[bool, float, int]:
            running = queues.running(k)
            return (running > 0, -queues.queued(k) / (1 + running), -self.level[k])

        return sorted(keys, key=need)

    # -- running tasks -------------------------------------------------------------------
    def _ensure(self, iid: int, preprocess: bool = True) -> None:
        """The local instance or copy for ``iid``, made (and preprocessed) on first use."""
        if iid in self.pes:
            return
        pe_id = self.plan.pe_of(iid)
        original = self.plan.pes[pe_id]
        if pe_id in self.used:  # a second instance here: a copy, without the first's writers
            pe = _copy_without_writers(original)
        else:
            self.used.add(pe_id)
            pe = original
        pe.rank = iid
        pe.instance_index = self.plan.placement.index_of[iid]  # 0 for every copy of a shared PE
        self.pes[iid] = pe
        self.calls.add(iid)
        writers: dict[str, Any] = {}
        recorder = self.recorder
        deliver = self.deliver if recorder is None else recorder.deliver(self.deliver)
        for output in pe.outputconnections:
            collected = (pe_id, output) in self.plan.collect
            writer = make_writer(
                make_routes(self.plan, self.worker, iid, output),
                self.reporter.result_list(pe_id, output) if collected else None,
                local_inboxes=self._no_inboxes,
                deliver=deliver,
                drain=_never,
                flush_results=self.reporter.flush_results,
                limit=self.tuning.local_limit,
                byte_limit=self.tuning.local_bytes,
                max_results=self.tuning.results_limit,
                results_s=self.tuning.results_s,
            )
            writers[output] = writer
        if recorder is not None:
            writers = recorder.wrap(iid, pe, writers)
        for output, writer in writers.items():
            pe.outputconnections[output][WRITER] = writer
        self.writers[iid] = writers
        self.emitters[iid] = make_emitter(pe_id, writers)
        handler = make_handler(pe, writers, self.emitters[iid])
        self.handlers[iid] = handler if recorder is None else recorder.handler(iid, handler)
        if preprocess:
            self.calls.call(iid, "preprocess", pe.preprocess)

    def _run_task(self, key: int, task: Any) -> None:
        """Run one task; the tasks it queues are counted in its own report, those of a task
        it runs nested in theirs: a report that is dropped (its task was a copy, or was
        given to another worker) drops the counts of exactly the outputs dropped with it."""
        port, items = task
        outer, outer_created = self.running, self.created
        self.running, self.created = key, Counter()
        self.queues.running_now(key)
        try:
            self._run_task_as(key, port, items)
        finally:
            self.running, self.created = outer, outer_created
            self.queues.running_now(outer)

    def _run_task_as(self, key: int, port: str | None, items: Any) -> None:
        self._ensure(key)
        stats = self.calls.stats[key]
        busy_before = stats.busy_s
        if port is None:
            pe = self.pes[key]
            process = None if self.recorder is None else self.recorder.source(key, pe.process)
            self.calls.feed(key, pe, self.emitters[key], items, process)
            count = items if isinstance(items, int) else len(items)
        else:
            self.calls.run_items(key, self.handlers[key], port, items)
            count = len(items)
        busy = stats.busy_s - busy_before
        pe_id = self.plan.pe_of(key)
        if port is not None:
            self._measure(pe_id, busy, count)
            self.held.add(key)  # its report names this worker a holder: it may fuse (fusion.py)
        self.flush_all(above=self.level[key])  # all it wrote, and no more: waits keep climbing
        if self.debug:
            _log.debug(
                "worker %d: task of %s (instance %d): %d item%s in %.4f s, queued %s",
                self.worker,
                pe_id,
                key,
                count,
                "" if count == 1 else "s",
                busy,
                dict(self.created) or "nothing",
            )
        self.reporter.flush_results()
        self.queues.task_done(key, ("task", (self.worker, pe_id, self._take_created(), count, busy)))

    def _postprocess(self, pe_id: str) -> None:
        for iid in self.plan.instances[pe_id]:
            if iid in self.pes:
                postprocess = self.pes[iid].postprocess
                if self.recorder is not None:
                    postprocess = self.recorder.postprocess(iid, postprocess)
                self.calls.call(iid, "postprocess", postprocess)
                calls = self.calls.stats[iid].calls
                _log.info(
                    "%s (rank %d): Processed %d iteration%s.", pe_id, iid, calls, "" if calls == 1 else "s"
                )
        self.flush_all()
        self.reporter.flush_results()
        self.queues.report(("posted", (self.worker, pe_id, self._take_created())))

    def _measure(self, pe_id: str, busy: float, count: int) -> None:
        if count <= 0:
            return
        per_item = busy / count
        old = self.cost.get(pe_id)
        self.cost[pe_id] = per_item if old is None else 0.7 * old + 0.3 * per_item
        size = int(self.target_task_s / max(self.cost[pe_id], 1e-7))
        self.sizes[pe_id] = max(1, min(self.tuning.batch_size, size))

    def _take_created(self) -> dict[str, int]:
        created, self.created = dict(self.created), Counter()
        return created

    # -- writing ---------------------------------------------------------------------------
    def deliver(self, target: int, port: str, data: Any) -> None:
        key = (target, port)
        buf = self.outbufs.get(key)
        if buf is None:
            buf = self.outbufs[key] = []
        buf.append(data)
        n = len(buf)
        if n & SAMPLE_MASK == 1:
            size = self.sizes[self.plan.pe_of(target)]
            self.outlimits[key] = sized_limit(data, n, size, self.tuning.batch_bytes)
        if n >= self.outlimits[key]:
            self._flush(key, self._top())
        elif perf_counter() > self._flush_by:  # a slow producer's items must not wait
            self.flush_all()

    def flush_all(self, above: int | None = None) -> None:
        """Queue every buffer whose destination's level is above ``above`` (default: the top
        of the stack; all of them when nothing runs). The others belong to an instance
        lower on the stack, which flushes them itself: waiting for room at or below the
        top could never end."""
        self._flush_by = perf_counter() + self.flush_interval
        if above is None:
            above = self._top()
        for key, items in list(self.outbufs.items()):
            if items and self.level[key[0]] > above:
                self._flush(key, above)

    def _top(self) -> int:
        return self.level[self.calls.stack[-1]] if self.calls.stack else -1

    def _flush(self, key: tuple[int, str], floor: int) -> None:
        """Queue the buffer ``key`` as a task, written at level ``floor`` (below the target)."""
        target, port = key
        items = self.outbufs[key]
        if not items:
            return
        self.outbufs[key] = []
        if self.fuses(target, len(items)) and self.run_fused(target, port, items):
            return  # a cheap shared task, run here and now (fusion.py)
        self._make_room(target, floor)
        try:
            self.queues.put(target, (port, items))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TransportError(unpicklable_message(self.plan, target, port, items, exc)) from exc
        self.created[self.plan.pe_of(target)] += 1

    def _make_room(self, target: int, floor: int) -> None:
        """Help (or wait) until the backlog of ``target`` is below its limit, running only
        tasks above ``floor`` (the level of what wrote; at least the top of the stack), so
        that nested help climbs and ends."""
        nap = 0.0001
        if self.queues.backlog(target) >= self.room(target):
            # about to help or wait: what the writer holds for other PEs goes out first,
            # or a cheap PE fed by the same writer would wait on a slow one
            self.flush_all(above=floor)
        self.helping += 1
        try:
            self._help_until_room(target, floor, nap)
        finally:
            self.helping -= 1

    def room(self, target: int) -> int:
        """The tasks queued for ``target`` from which a writer helps or waits."""
        return self.backlog_limit

    def _help_until_room(self, target: int, floor: int, nap: float) -> None:
        while self.queues.backlog(target) >= self.room(target):
            pinned = [k for k in self.pinned_keys if self.level[k] > floor]
            shared = self._by_need(k for k in self.shared_keys if self.level[k] > floor)
            keys = [self.control, *pinned, *shared]
            got = self.queues.take(keys, nap)
            if got is None:
                nap = min(_MAX_NAP_S, nap * 2)
                continue
            key, body = got
            if key == self.control:
                self._command(body)
            else:
                self._run_task(key, body)

    def _close_recorder(self) -> None:
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            recorder.close()

    def close(self) -> None:
        """Remove the writers installed on the PE objects (they reference this worker);
        close the recorder (its last records are written)."""
        self._close_recorder()
        for pe in self.pes.values():
            for output in pe.outputconnections.values():
                output.pop(WRITER, None)


def _copy_without_writers(pe: Any) -> Any:
    """A deep copy of ``pe`` as it was before this worker installed its writers on it."""
    saved = {name: out.pop(WRITER, None) for name, out in pe.outputconnections.items()}
    try:
        return copy.deepcopy(pe)
    finally:
        for name, writer in saved.items():
            if writer is not None:
                pe.outputconnections[name][WRITER] = writer


def _never(iid: int) -> None:  # writers here have no local inboxes to drain
    raise AssertionError(f"dispel4py internal error: drain({iid}) in the dynamic engine")
