"""Running a cheap shared task where it was made: fewer tasks, the same results.

A task of a *shared* PE may be taken by any worker, this one included. So when a worker
writes a task for a shared PE whose measured cost is tiny (``fuse_s`` for the whole task:
far below what queueing it costs, a round trip to Redis or a local queue's hand-off), it
runs it at once, nested in the task that wrote it, instead of queueing it: as Flink chains
operators and Beam fuses stages. What the fused task writes is counted as created by the
task that made it and travels with it (on Redis, in the same commit: a task given to
another worker takes its fused work with it), and the fused task is never queued, so the
coordinator neither counts it as created nor hears it reported done; its items, calls and
busy time are the instance's, as for any task. Its items are its own copies (deep copies;
numbers and strings as they are), as a queue would give them: a PE that mutates its input,
or a writer that keeps using what it wrote, sees the same as with a queue.

A worker fuses a PE only after it has run a queued task of it: that task's report makes the
worker a holder of the PE's copy for the coordinator, which asks every holder, and only
holders, to ``postprocess`` (a copy that only ever ran fused tasks would never be asked).

Not fused: pinned PEs (their instance lives on one worker), PEs this worker has not run a
queued task of (their cost is not measured either), a task that would cost more
than ``fuse_s``, a chain deeper than ``MAX_FUSED_DEPTH``, a PE this worker may not take
(tags), and runs with provenance or ``--on-error dead-letter`` (whose per-task records and
retries need real tasks).
"""

from __future__ import annotations

import copy
from typing import Any

from dispel4py.engine.writers import IMMUTABLE_TYPES

from .tasks import WorkerQueues

__all__ = ["Fusing", "MAX_FUSED_DEPTH"]

MAX_FUSED_DEPTH = 16  # nested calls on a worker's stack beyond which tasks are queued


class Fusing:
    """The fusing half of :class:`~dispel4py.dynamic.worker.DynamicWorker`."""

    fuse_s = 0.0005  # a task costing at most this is run where it is made (local queues)
    calls: Any
    cost: dict[str, float]
    plan: Any
    level: Any
    handlers: dict[int, Any]
    queues: WorkerQueues
    running: int
    fusable: frozenset[int] = frozenset()
    held: set[int]  # keys this worker ran a queued (so reported) task of

    def start_fusing(self, shared_keys: list[int], allowed: bool) -> None:
        """Fuse tasks of these shared keys from now on (those this worker may take)."""
        self.fusable = frozenset(shared_keys) if allowed and self.fuse_s > 0 else frozenset()

    def fuses(self, target: int, count: int) -> bool:
        if target not in self.fusable or target not in self.held:
            return False
        if len(self.calls.stack) >= MAX_FUSED_DEPTH:
            return False
        cost = self.cost.get(self.plan.pe_of(target))
        return cost is not None and cost * count <= self.fuse_s and self.calls.may_nest(target)

    def run_fused(self, target: int, port: str, items: list[Any]) -> bool:
        """Run the task here; False (nothing run) if its items cannot be copied."""
        try:  # its own copies, as a queue's unpickling would give: the writer may keep using
            # an item it wrote, and a fan-out's next destination is copied from it afterwards
            items = [x if type(x) in IMMUTABLE_TYPES else copy.deepcopy(x) for x in items]
        except Exception:
            return False  # queued instead: pickling says what is wrong with it, if anything
        self._ensure(target)
        stats = self.calls.stats[target]
        busy_before = stats.busy_s
        outer, self.running = self.running, target
        self.queues.running_now(target)  # a worker that dies now names the fused PE
        try:
            self.calls.run_items(target, self.handlers[target], port, items)
        finally:
            self.running = outer
            self.queues.running_now(outer)
        self._measure(self.plan.pe_of(target), stats.busy_s - busy_before, len(items))
        self.flush_all(above=self.level[target])
        return True

    # provided by the worker
    def _ensure(self, iid: int, preprocess: bool = True) -> None: ...

    def _measure(self, pe_id: str, busy: float, count: int) -> None: ...

    def flush_all(self, above: int | None = None) -> None: ...
