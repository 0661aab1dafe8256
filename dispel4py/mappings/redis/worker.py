"""The dynamic worker on Redis, with ``--on-error dead-letter``.

By default a PE that raises ends the run, as on every mapping. With ``--on-error
dead-letter`` a *shared* task that raises (taken at the top of the worker's loop, not run
nested while helping) is retried instead, and an item that keeps failing is given up:

* what the task wrote is thrown away (its frame of held-back outputs and results, its
  buffers, its count of created tasks), so a retry cannot add anything twice;
* a task of several items is split into one task per item, in one commit with the
  acknowledgement of the task, so that only the bad item is retried;
* a one-item task goes back to its queue with its delivery count plus one
  (``REQUEUE``); at ``--max-deliveries`` it goes to the dead-letter stream and the driver
  counts it as done: the run goes on and ends with the list of items given up (exit 1).

Pinned tasks (stateful instances) and nested tasks still end the run: a stateful PE's
state after a failed item is unknown, and a nested task's outputs share buffers with the
task it runs inside.

Tasks are sized by the engine to ~20 ms of work, which hides the round trip a task costs
here (a few hundred microseconds). Tasks that turn out much smaller (a producer flushes
what it has when its own task ends) are taken several at a time and run as one
(``merge``: one round trip, one commit for all of them).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from dispel4py.dynamic.worker import DynamicWorker
from dispel4py.errors import WorkflowFailed

__all__ = ["RedisWorker"]

MAX_MERGE = 16  # tiny tasks of one PE run as one, at most this many


class RedisWorker(DynamicWorker):
    # a task costs a round trip to the server (~1 ms on a busy machine, against ~20 us for
    # a local queue): larger tasks keep that near 2 %; the tail they add is a few of them
    # (measured: 2000 x 1 ms on 2 workers, 1.24 s at 0.02 s per task, 1.19 s at 0.035-0.05)
    target_task_s = 0.04

    def _run_task(self, key: int, task: Any) -> None:
        queues = self.queues
        if not getattr(queues, "dead_letter", False) or self.calls.stack or key not in self.shared_keys:
            super()._run_task(key, task)
            return
        created = Counter(self.created)
        try:
            super()._run_task(key, task)
        except WorkflowFailed as exc:
            for items in self.outbufs.values():
                items.clear()
            for items in self.reporter.results.lists.values():
                items.clear()
            self.created = created
            self.calls.failure = None
            queues.retry_or_give_up(key, task, exc)  # type: ignore[attr-defined]

    def _measure(self, pe_id: str, busy: float, count: int) -> None:
        super()._measure(pe_id, busy, count)
        cost = self.cost.get(pe_id)
        if cost is None or count <= 0:
            return
        # tasks far smaller than the engine's target (their producer flushed early): a few at once
        merge = max(1, min(MAX_MERGE, int(self.target_task_s / max(cost * count, 1e-7))))
        for iid in self.plan.instances[pe_id]:
            self.queues.merge[iid] = merge  # type: ignore[attr-defined]
