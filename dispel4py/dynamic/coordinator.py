"""The coordinator of a dynamic run: counts work in flight and decides every end of stream.

It runs in the driver and never runs PE code. Its invariants:

* **Counting that cannot lie.** ``in_flight[pe]`` is the number of tasks of ``pe`` queued or
  running. It grows by the counts a worker reports as created and shrinks by one per task
  reported done, both from the same report (``tasks.py``). A worker reports the tasks it
  queued no later than the report of the task (or ``postprocess``) during which it queued
  them, so once every upstream PE of ``pe`` has ended, every task of ``pe`` that will ever
  exist has been counted, and ``in_flight[pe] == 0`` means none is left. (Before that the
  count may dip, even below zero, but it is not looked at.)
* **End of stream.** A PE ends when every upstream PE has ended and ``in_flight`` is 0: the
  workers holding a copy or an instance of it are asked to ``postprocess``; their writes
  are counted from their ``posted`` reports before the PE counts as ended, so its
  downstream PEs cannot end too early. The workers are told to send their stats ("end") once
  every PE has ended or is ending. PEs end in topological order. An empty run ends
  at once; nothing waits on a clock, so a PE that takes an hour per item is never cut off.
* **Who holds what.** Pinned instances are known from the plan; a worker holds a copy of a
  shared PE once it has reported a task of it (every task is reported before the PE can
  end, so the set is complete when it is used). A worker taken for gone (``worker_lost``)
  never holds one again: a task it committed after it was taken for gone, before it saw
  its quit command, is counted, but its copy will never ``postprocess``: waiting for it
  would keep the run from ever ending.
* **Quiet ends.** A PE whose ``postprocess`` is the base class's (it writes nothing) and
  that nothing records (no provenance) is asked to ``postprocess`` (its "Processed N
  iterations" lines) but not waited for: it cannot create tasks then, so the PEs after
  it may end in the same round, one round trip instead of one per PE.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from dispel4py.core import GenericPE
from dispel4py.engine.plan import Plan
from dispel4py.engine.result import InstanceStats

from .layout import SHARED
from .tasks import CoordinatorQueues

__all__ = ["Coordinator", "merge_copies"]

_log = logging.getLogger("dispel4py.engine")


class Coordinator:
    def __init__(self, plan: Plan, queues: CoordinatorQueues, *, recording: bool = False) -> None:
        self.plan, self.queues = plan, queues
        self.quiet = set() if recording else {pe for pe in plan.order if _ends_quietly(plan.pes[pe])}
        self.in_flight = dict.fromkeys(plan.order, 0)
        self.upstream = {pe: {e.src for e in plan.edges if e.dst == pe} for pe in plan.order}
        self.holders: dict[str, set[int]] = {pe: set() for pe in plan.order}
        for iid, worker in enumerate(plan.placement.worker_of):
            if worker != SHARED:
                self.holders[plan.pe_of(iid)].add(worker)
        self.posting: dict[str, set[int]] = {}
        self.gone: set[int] = set()  # workers taken for gone: they hold nothing any more
        self.ended: set[str] = set()
        self.finished = False
        self.end_sent = False  # the workers were told to send their stats ("end")
        self.items = dict.fromkeys(plan.order, 0)
        self.busy_s = dict.fromkeys(plan.order, 0.0)

    def start(self) -> None:
        """Queue the provided inputs (one task per PE that has some), then look for ends."""
        for pe_id, provided in self.plan.inputs.items():
            iid = self.plan.instances[pe_id][0]
            self.queues.put(iid, (None, provided))
            self.in_flight[pe_id] += 1
        self._advance()

    def on_report(self, worker: int, kind: str, body: Any) -> bool:
        """Apply a worker's ``task``/``posted`` report; False for other kinds."""
        if kind == "task":
            _, pe_id, created, items, busy = body
            self.in_flight[pe_id] -= 1
            self.items[pe_id] += items
            self.busy_s[pe_id] += busy
            if worker not in self.gone:
                self.holders[pe_id].add(worker)
            self._count(created)
        elif kind == "posted":
            _, pe_id, created = body
            self._count(created)
            waiting = self.posting.get(pe_id)
            if waiting is not None:  # None: a quiet end, not waited for
                waiting.discard(worker)
                if not waiting:
                    self._ended(pe_id)
        else:
            return False
        self._advance()
        return True

    def worker_lost(self, worker: int) -> None:
        """A worker hosting no pinned instance is gone (queues that redeliver its tasks,
        e.g. Redis): its copies of shared PEs will never postprocess, so stop waiting for
        them. Its unfinished tasks are still counted in flight until another worker runs them;
        a task it still commits (it was alive, taken for gone) is counted, but makes it no
        holder again."""
        self.gone.add(worker)
        for holders in self.holders.values():
            holders.discard(worker)
        for pe_id, waiting in list(self.posting.items()):
            waiting.discard(worker)
            if not waiting:
                self._ended(pe_id)
        self._advance()

    def task_dropped(self, pe_id: str) -> None:
        """A task of ``pe_id`` will never run (dead-lettered): it is no longer in flight."""
        self.in_flight[pe_id] -= 1
        self._advance()

    def backlog(self) -> int:
        return sum(max(0, n) for n in self.in_flight.values())

    def queued_tasks(self) -> dict[str, int]:
        """Tasks of each PE queued or running (read by the progress display, any thread)."""
        return {pe: max(0, n) for pe, n in list(self.in_flight.items())}

    def _count(self, created: dict[str, int]) -> None:
        for pe_id, n in created.items():
            self.in_flight[pe_id] += n

    def _advance(self) -> None:
        """End every PE that can end now (its end may let the next one end too)."""
        for pe_id in self.plan.order:
            if pe_id in self.ended or pe_id in self.posting:
                continue
            if self.in_flight[pe_id] != 0 or not self.upstream[pe_id] <= self.ended:
                continue
            workers = sorted(self.holders[pe_id])
            if not workers:
                self._ended(pe_id)
                continue
            _log.debug("end of stream: %s, postprocess on workers %s", pe_id, workers)
            self.posting[pe_id] = set(workers)
            for worker in workers:
                self.queues.command(worker, ("post", pe_id))
            if pe_id in self.quiet:
                self._ended(pe_id)
        if not self.end_sent and all(pe in self.ended or pe in self.posting for pe in self.plan.order):
            # every PE ended or ending: one still ending has no PE downstream (that one could
            # not have begun to end), so no task can arise any more; each worker sends its
            # stats after its last postprocess, without waiting for a round trip here
            self.end_sent = True
            for worker in range(self.plan.num_workers):
                self.queues.command(worker, ("end",))
        if len(self.ended) == len(self.plan.order):
            self.finished = True

    def _ended(self, pe_id: str) -> None:
        self.posting.pop(pe_id, None)
        self.ended.add(pe_id)

    def cost_per_item(self) -> dict[str, float]:
        return {pe: self.busy_s[pe] / n for pe, n in self.items.items() if n}


def _ends_quietly(pe: Any) -> bool:
    """Whether ``pe``'s ``postprocess`` is the base class's no-op (it can write nothing)."""
    kind = type(pe)
    return (
        getattr(kind, "postprocess", None) is GenericPE.postprocess
        and getattr(kind, "_postprocess", None) is GenericPE._postprocess
        and "postprocess" not in vars(pe)
        and "_postprocess" not in vars(pe)
    )


def merge_copies(stats: list[InstanceStats]) -> list[InstanceStats]:
    """One row per instance: the copies of a shared PE on several workers are added up."""
    merged: dict[int, InstanceStats] = {}
    for s in stats:
        row = merged.get(s.instance)
        if row is None:
            merged[s.instance] = dataclasses.replace(s)
            continue
        row.calls += s.calls
        row.items_out += s.items_out
        row.busy_s += s.busy_s
        row.copies += s.copies
        row.worker = SHARED
    return list(merged.values())
