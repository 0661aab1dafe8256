"""The dynamic worker on Redis, with ``--on-error dead-letter``.

By default a PE that raises ends the run, as on every mapping. With ``--on-error
dead-letter`` a *shared* task that raises is retried instead, and an item that keeps
failing is given up — whatever the batch size and the load, so also when the task runs
nested (a writer helping under backpressure):

* what the task wrote is thrown away (its frame of held-back outputs and results, its
  buffers, its count of created tasks), so a retry cannot add anything twice. What the
  tasks below it on the stack wrote is set aside while it runs (``_set_aside``), so its
  commit carries only its own writes and its failure drops only its own;
* a task of several items is split into one task per item, in one commit with the
  acknowledgement of the task, so that only the bad item is retried;
* a one-item task goes back to its queue with its delivery count plus one
  (``REQUEUE``); at ``--max-deliveries`` it goes to the dead-letter stream and the driver
  counts it as done: the run goes on and ends with the list of items given up (exit 1).

Pinned tasks (stateful instances) still end the run: a stateful PE's state after a failed
item is unknown.

Tasks are sized by the engine to ~40 ms of work, which hides the round trip a task costs
here (a few hundred microseconds). Tasks that turn out shorter than ``merge_s`` (a
producer flushes what it has when its own task ends; one item of a slow PE) are taken
several at a time and run as one (``merge``: one round trip, one commit and one report for
all of them), never more than the worker's fair share of the queue, so that the last tasks
of a stage still spread over every worker.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from dispel4py.dynamic.worker import DynamicWorker
from dispel4py.errors import WorkflowFailed
from dispel4py.mappings.redis.fleet import can_run, requirements

__all__ = ["RedisWorker"]

_Aside = tuple[dict[tuple[int, str], list[Any]], dict[tuple[str, str], list[Any]], Counter[str]]

MAX_FLEET = 1024  # a "fleet" command above this is taken as this
MAX_MERGE = 16  # tiny tasks of one PE run as one, at most this many


class RedisWorker(DynamicWorker):
    # a task costs a round trip to the server (~1 ms on a busy machine, against ~20 us for
    # a local queue): larger tasks keep that near 2 %; the tail they add is a few of them
    # (measured: 2000 x 1 ms on 2 workers, 1.24 s at 0.02 s per task, 1.19 s at 0.035-0.05)
    target_task_s = 0.04
    fuse_s = 0.002  # a task cheaper than its round trip runs where it is made (dynamic/fusion.py)
    # tasks of one PE shorter than this are taken several at a time (one round trip, one
    # commit, one report), up to a fair share of the queue (TAKE), with room() to hold them:
    # 1051 x 50 ms on -n 2/4/8 used 1.25-1.52 process-seconds (dyn_multi 1.15-1.45) against
    # 2.6-3.2 when each task was taken alone, at the same wall time
    merge_s = 0.2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.queues, "dead_letter", False):  # a retried task must be a real one
            self.fuse_s = 0.0
        # placement by capability: only the shared PEs whose required tags this worker offers
        # (``queues.offers``: a joined worker's agent's --tags; the driver's workers offer none)
        offers: frozenset[str] = getattr(self.queues, "offers", frozenset())
        needs = requirements(self.plan)
        self.shared_keys = [
            k for k in self.shared_keys if can_run(needs.get(self.plan.pe_of(k), frozenset()), offers)
        ]
        self.on_park: Any = None  # an agent's process tells its agent when it is parked or woken
        # a backlog from half the limit up is counted afresh before each write (see backlog())
        queues: Any = self.queues  # the Redis queues (queues.py imports this module)
        queues.near = max(1, self.backlog_limit // 2)
        queues.share = max(1, self.plan.num_workers)

    def _command(self, message: Any) -> bool:
        if message[0] == "fleet":  # the run's workers, joined ones included (redis/fleet.py)
            workers = max(1, self.plan.num_workers, min(int(message[1]), MAX_FLEET))
            self.backlog_limit = self.tuning.credits * workers
            self.queues.share = workers  # type: ignore[attr-defined]
            return False
        if message[0] == "shm":  # a worker that cannot map the arena joined (payloads.py)
            self.queues.payloads.in_band = True  # type: ignore[attr-defined]
            return False
        quit_now = super()._command(message)
        if self.on_park is not None and message[0] in ("park", "wake"):
            self.on_park(self.parked)
        return quit_now

    def _run_task(self, key: int, task: Any) -> None:
        queues = self.queues
        if not getattr(queues, "dead_letter", False) or key not in self.shared_keys:
            super()._run_task(key, task)
            return
        aside = self._set_aside()
        try:
            super()._run_task(key, task)
        except WorkflowFailed as exc:
            if exc.instance != key:  # a pinned task it ran nested failed: the run ends
                raise
            self._set_aside()  # what this task wrote, thrown away
            self.calls.failure = None
            queues.retry_or_give_up(key, task, exc)  # type: ignore[attr-defined]
        finally:
            self._put_back(aside)

    def _set_aside(self) -> _Aside:
        """Take what the tasks below this one on the stack wrote and have not sent yet (their
        buffered outputs, results and counts of created tasks), so that this task's commit
        carries only its own, and a failure drops only its own."""
        outbufs = {k: items for k, items in self.outbufs.items() if items}
        for k in outbufs:
            self.outbufs[k] = []
        results = {pe_out: items[:] for pe_out, items in self.reporter.results.lists.items() if items}
        for pe_out in results:
            self.reporter.results.lists[pe_out].clear()  # in place: the writers hold these lists
        created, self.created = self.created, Counter()
        return outbufs, results, created

    def _put_back(self, aside: _Aside) -> None:
        outbufs, results, created = aside
        for k, items in outbufs.items():
            self.outbufs[k] = items + self.outbufs.get(k, [])
        for pe_out, items in results.items():
            self.reporter.results.lists[pe_out][:0] = items
        created.update(self.created)
        self.created = created

    def room(self, target: int) -> int:
        """A queue whose tasks are taken several at a time holds as many times more, so that
        every worker can still take a whole merge while a producer is away helping; only
        while its tasks are small enough that the bytes it may hold stay within the usual
        bound (``credits x workers`` tasks of ``batch_bytes``)."""
        queues: Any = self.queues
        merge = queues.merge.get(target, 1)
        if merge > 1 and queues.put_bytes.get(target, 0) * merge <= self.tuning.batch_bytes:
            return self.backlog_limit * merge
        return self.backlog_limit

    def _tasks_merged(self, pe_id: str) -> int:
        """The queued tasks the task just measured was made of (several when merged; one
        when it was fused, ``run_fused``, where the frame is its writer's)."""
        frames = self.queues.frames  # type: ignore[attr-defined]
        if frames and frames[-1].key == self.running and self.plan.pe_of(self.running) == pe_id:
            return len(frames[-1].entries)
        return 1

    def _measure(self, pe_id: str, busy: float, count: int) -> None:
        super()._measure(pe_id, busy, count)
        cost = self.cost.get(pe_id)
        if cost is None or count <= 0:
            return
        # tasks shorter than merge_s (a producer flushed early; one item of a slow PE): a few at once
        per_task = count / self._tasks_merged(pe_id)
        merge = max(1, min(MAX_MERGE, round(self.merge_s / max(cost * per_task, 1e-7))))
        for iid in self.plan.instances[pe_id]:
            self.queues.merge[iid] = merge  # type: ignore[attr-defined]
