"""The fleet's autoscaler leaves dead workers out. With three local workers the policy starts
with two active, the worker hosting the source (a pinned instance) parked last; when the two
active workers die, the one left must be woken, or the backlog waits for the dead (a run that
hung once under load: test_worker_killed_by_a_signal[dyn_auto_redis-num=3])."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from dispel4py.mappings.redis.fleet_scaling import FleetScaler

pytestmark = pytest.mark.timeout(10)

SOURCE, SHARED = 0, 1  # instance keys: the pinned source (on worker 0), one shared PE


@dataclass
class _Plan:
    num_workers: int = 3

    def hosted(self, worker: int) -> list[int]:
        return [SOURCE] if worker == 0 else []

    def worker_of(self, key: int) -> int:
        return 0


@dataclass
class _Coordinator:
    plan: _Plan = field(default_factory=_Plan)


@dataclass
class _Queues:
    shared: tuple[int, ...] = (SHARED,)
    is_shared: frozenset[int] = frozenset({SHARED})
    instances: int = 2
    backlog: int = 9
    commands: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)

    def total_backlog(self) -> int:
        return self.backlog

    def queued(self, key: int) -> int:
        return self.backlog if key == SHARED else 0

    def running(self, key: int) -> int:
        return 0

    def command(self, worker: int, message: tuple[str, ...]) -> None:
        self.commands.append((worker, message))


@dataclass
class _Pool:
    remote: dict[int, float] = field(default_factory=dict)
    offers: dict[int, object] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)


def test_the_worker_left_is_woken_when_the_active_ones_die() -> None:
    queues, pool = _Queues(), _Pool()
    scaler = FleetScaler(queues, _Coordinator(), pool, local=3, idle_time_s=1.0)
    assert scaler.active == {1: True, 2: True, 0: False}  # the source's worker parked first
    pool.lost.update({1, 2})  # both died running shared tasks; their tasks went back
    scaler.tick()
    assert scaler.active == {0: True}
    assert queues.commands[-1] == (0, ("wake",))


def test_every_local_worker_lost_leaves_nothing_to_scale() -> None:
    queues, pool = _Queues(), _Pool()
    scaler = FleetScaler(queues, _Coordinator(), pool, local=2, idle_time_s=1.0)
    pool.lost.update({0, 1})
    sent = len(queues.commands)
    scaler.tick()
    assert len(queues.commands) == sent
