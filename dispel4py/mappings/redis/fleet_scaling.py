"""Autoscaling of a whole fleet (``dyn_auto_redis``): the driver's policy sizes every worker
of the run, its own and those of the host agents that joined, not only its own host's.

* **Who decides.** The driver's :class:`~dispel4py.dynamic.autoscale.ScalingPolicy` (pure),
  fed with the backlog of the shared queues, how many workers take shared tasks and how
  many of them run one. Its bounds follow the fleet: the sum over hosts of each host's
  ``--min`` and ``--max`` (``set_bounds``), as agents join and leave.
* **Spread over hosts** (:func:`allocate`, pure): each host first gets its minimum, then
  one worker at a time goes to the host with the fewest active workers that has room, so
  the active workers are spread fairly; within a host the workers hosting no pinned
  instance stay active first, then the lowest ids. A worker that has been running a pinned
  task for a second or more (a source that runs for the whole run) is *held*: it counts
  neither as active nor as available, so the others are scaled around it.
  The driver's own workers form one host (minimum 1, as ``dyn_auto_multi``); a plain
  ``dispel4py worker`` (no agent) is a host of one worker, minimum 0.
* **How.** A worker is parked or woken by a command on its control stream (the engine's
  ``park``/``wake``, as on one machine): a parked worker waits in its blocking read and
  costs nothing; woken, it takes a task within a round trip. It still serves its pinned
  instances while parked, so correctness never depends on the count. An agent learns of
  its processes' state from them and shows it in its record.
* **Seen.** Every change is logged at ``-v`` with the count per host; the total over time
  is the run's ``workers_timeline`` (``--stats``, ``--stats-json``) and the count per host
  over time its ``hosts_timeline``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from dispel4py.dynamic.autoscale import Observation, ScalingPolicy

__all__ = ["FleetScaler", "Host", "allocate"]

_log = logging.getLogger("dispel4py.engine")
DRIVER = "driver"
HELD_S = 1.0  # a worker in a pinned task this long counts as held, not as available


@dataclass(frozen=True)
class Host:
    """One host's workers of the run (ids, sorted) and its bounds of active workers."""

    name: str
    workers: tuple[int, ...]
    minimum: int
    maximum: int

    @property
    def low(self) -> int:
        return min(self.minimum, len(self.workers))

    @property
    def high(self) -> int:
        return max(self.low, min(self.maximum, len(self.workers)))


def allocate(target: int, hosts: list[Host]) -> dict[str, int]:
    """How many active workers each host gets for ``target`` in all: every host its
    minimum, then one at a time to the host with the fewest that still has room (ties: by
    name). The sum is ``target`` clamped into the hosts' total bounds."""
    counts = {h.name: h.low for h in hosts}
    room = {h.name: h.high for h in hosts}
    left = target - sum(counts.values())
    while left > 0:
        open_hosts = [name for name in sorted(counts) if counts[name] < room[name]]
        if not open_hosts:
            break
        name = min(open_hosts, key=lambda n: counts[n])
        counts[name] += 1
        left -= 1
    return counts


class FleetScaler:
    """The driver's actuator: observe, decide, spread, park and wake (one ``tick`` each
    driver tick)."""

    def __init__(
        self, queues: Any, coordinator: Any, pool: Any, local: int, idle_time_s: float, threshold: int = 10
    ) -> None:
        self.queues, self.coordinator, self.pool, self.local = queues, coordinator, pool, local
        self.idle_time_s, self.threshold = idle_time_s, threshold
        self.shared = list(queues.shared)
        self.pinned = [k for k in range(queues.instances) if k not in queues.is_shared]
        self.held_since: dict[int, float] = {}
        self.start = time.monotonic()
        self.policy: ScalingPolicy | None = None
        self.active: dict[int, bool] = {}  # every worker of the run: whether it takes shared tasks
        self.counts: dict[str, int] = {}
        self.timeline: list[tuple[float, int]] = []
        self.hosts_timeline: list[tuple[float, dict[str, int]]] = []
        if local:
            self.tick()  # the driver's own workers are there from the start

    def hosts(self) -> list[Host]:
        # a dead local worker is out: counted, it took the place of a live one, which stayed
        # parked with the backlog waiting for it (a run that hung)
        lost = self.pool.lost
        alive = tuple(w for w in range(self.local) if w not in lost)
        found = [Host(DRIVER, alive, 1, self.local)] if alive else []
        agents: dict[str, list[int]] = {}
        bounds: dict[str, tuple[int, int]] = {}
        for worker in sorted(self.pool.remote):
            offer = self.pool.offers.get(worker)
            name = offer.agent if offer is not None and offer.agent else f"worker {worker}"
            agents.setdefault(name, []).append(worker)
            bounds[name] = (offer.minimum, offer.maximum) if offer is not None and offer.agent else (0, 1)
        found += [Host(name, tuple(ids), *bounds[name]) for name, ids in sorted(agents.items())]
        return [
            Host(h.name, tuple(sorted(h.workers, key=self._pinned_last)), h.minimum, h.maximum) for h in found
        ]

    def _pinned_last(self, worker: int) -> tuple[bool, int]:
        """Workers hosting pinned instances are parked first: a source that runs for the whole
        run keeps its worker, which cannot take shared tasks meanwhile (parked, it still
        serves its pinned instances)."""
        plan = self.coordinator.plan
        return (worker < plan.num_workers and bool(plan.hosted(worker)), worker)

    def tick(self) -> None:
        now = time.monotonic() - self.start
        self.queues.total_backlog()  # reads the counts of tasks queued and running
        every = self.hosts()
        self.active = {w: self.active.get(w, True) for h in every for w in h.workers}  # joins active
        held = self._held(now)
        hosts = [
            Host(h.name, tuple(w for w in h.workers if w not in held), h.minimum, h.maximum) for h in every
        ]
        if not any(h.workers for h in hosts):
            return
        low = max(1, sum(h.low for h in hosts))
        high = max(low, sum(h.high for h in hosts))
        if self.policy is None:
            self.policy = ScalingPolicy(
                low, high, idle_time_s=self.idle_time_s, queue_threshold=self.threshold
            )
            reason = "start"
        else:
            self.policy.set_bounds(low, high)
            observation = self._observe(now, hosts)
            decision = self.policy.decide(observation)
            reason = decision.reason
            _log.debug("autoscaling: %s (%s)", reason, observation)
        self._apply(allocate(self.policy.target, hosts), hosts, reason, now)

    def _held(self, now: float) -> set[int]:
        """Workers that have been running a pinned task for ``HELD_S`` or more (a source that
        runs for the whole run, a slow stateful PE): they cannot take shared tasks, so they
        count neither as active nor as available, and the other workers are scaled."""
        plan = self.coordinator.plan
        running = {plan.worker_of(k) for k in self.pinned if self.queues.running(k) > 0}
        self.held_since = {w: self.held_since.get(w, now) for w in running}
        return {w for w, since in self.held_since.items() if now - since >= HELD_S}

    def _observe(self, now: float, hosts: list[Host]) -> Observation:
        active = sum(self.active[w] for h in hosts for w in h.workers)
        # the shared queues only: a pinned instance's backlog is not helped by more workers
        backlog = sum(max(0, self.queues.queued(k)) for k in self.shared)
        busy = min(active, sum(self.queues.running(k) for k in self.shared))
        idle = 1.0 - busy / active if active else 0.0  # a sample of the share of idle workers
        return Observation(time_s=now, backlog=backlog, active=active, busy=busy, idle_fraction=idle)

    def _apply(self, counts: dict[str, int], hosts: list[Host], reason: str, now: float) -> None:
        changed = False
        for host in hosts:
            for index, worker in enumerate(host.workers):
                wanted = index < counts[host.name]
                if self.active[worker] != wanted:
                    self.queues.command(worker, ("wake",) if wanted else ("park",))
                    self.active[worker] = wanted
                    changed = True
        if not changed and counts == self.counts:
            return
        self.counts = counts
        total = sum(counts.values())
        per_host = ", ".join(f"{name}: {n}" for name, n in counts.items())
        _log.info(
            "autoscaling: %d of %d workers take shared tasks (%s) (%s)",
            total,
            len(self.active),
            per_host,
            reason,
        )
        if not self.timeline or self.timeline[-1][1] != total:
            self.timeline.append((round(now, 3), total))
        self.hosts_timeline.append((round(now, 3), dict(counts)))
