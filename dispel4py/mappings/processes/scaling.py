"""Actuation of autoscaling on one machine: park and wake workers as the policy decides.

The policy (``dynamic/autoscale.py``) is pure; this is the part with side effects. Every
worker process is started at once (starting a process costs more than a decision is
worth); a *parked* worker takes no shared tasks but still serves its pinned instances, so
correctness never depends on how many workers are active. The highest-numbered workers
are parked first.
"""

from __future__ import annotations

import logging
import time

from dispel4py.dynamic.autoscale import Observation, ScalingPolicy
from dispel4py.dynamic.coordinator import Coordinator
from dispel4py.dynamic.layout import SHARED
from dispel4py.mappings.processes.local_queues import LocalQueues

__all__ = ["LocalScaler"]

_log = logging.getLogger("dispel4py.engine")


class LocalScaler:
    def __init__(
        self, workers: int, queues: LocalQueues, coordinator: Coordinator, threshold: int | None
    ) -> None:
        self.workers, self.queues, self.coordinator = workers, queues, coordinator
        self.policy = ScalingPolicy(1, workers, queue_threshold=10 if threshold is None else threshold)
        self.shared = [i for i, w in enumerate(coordinator.plan.placement.worker_of) if w == SHARED]
        self.start = time.monotonic()
        self.active = workers
        self.timeline: list[tuple[float, int]] = []
        self._apply(self.policy.target, "start", 0.0)

    def tick(self) -> None:
        """Observe the queues, ask the policy, park or wake workers."""
        running = sum(self.queues.running(k) for k in self.shared)
        observation = Observation(
            time_s=time.monotonic() - self.start,
            backlog=self.queues.total_backlog(),
            active=self.active,
            busy=min(self.active, running),
        )
        decision = self.policy.decide(observation)
        if decision.target != self.active:
            self._apply(decision.target, decision.reason, observation.time_s)

    def _apply(self, target: int, reason: str, now: float) -> None:
        for worker in range(target, self.active):
            self.queues.command(worker, ("park",))
        for worker in range(self.active, target):
            self.queues.command(worker, ("wake",))
        _log.info("autoscaling: %d of %d workers take shared tasks (%s)", target, self.workers, reason)
        self.active = target
        self.timeline.append((round(now, 3), target))
