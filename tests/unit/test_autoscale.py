"""The autoscaling policy on synthetic traces: pure inputs, no processes, no clock."""

from __future__ import annotations

import math
import random
from itertools import pairwise

import pytest

from dispel4py.dynamic.autoscale import (
    Decision,
    Observation,
    ScalingPolicy,
    active_workers_timeline,
    format_timeline,
)

pytestmark = pytest.mark.timeout(30)

DT = 0.1  # seconds between observations in the simulations


def simulate(
    policy: ScalingPolicy,
    arrivals: list[int],
    per_worker: int,
    lag_steps: int = 0,
) -> list[Decision]:
    """A fluid queue: each step ``arrivals[i]`` tasks join the backlog and every active worker
    takes up to ``per_worker`` of them. Actuation applies a decision ``lag_steps`` later."""
    backlog, decisions = 0, []
    applied = [policy.target] * (lag_steps + 1)
    for i, arriving in enumerate(arrivals):
        active = applied[0]
        backlog += arriving
        done = min(backlog, active * per_worker)
        backlog -= done
        busy = min(active, math.ceil(done / per_worker))
        idle = 1.0 - done / (active * per_worker)
        decision = policy.decide(Observation(i * DT, backlog, active, busy, idle))
        decisions.append(decision)
        applied = [*applied[1:], decision.target]
    return decisions


def changes(decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if d.changed]


def test_steady_overload_rises_to_maximum_and_stays():
    policy = ScalingPolicy(1, 16, queue_threshold=10, initial=1, cooldown_s=0.5)
    decisions = simulate(policy, [100] * 200, per_worker=2)
    ups = changes(decisions)
    assert [d.target for d in ups] == [2, 4, 8, 16]  # doubling, one step per cooldown
    assert ups[-1].time_s <= 2.0
    assert all(d.target == 16 for d in decisions if d.time_s >= ups[-1].time_s)
    assert "at maximum" in decisions[-1].reason


def test_burst_then_drain_falls_to_minimum_after_idle_time():
    policy = ScalingPolicy(1, 8, queue_threshold=10, idle_time_s=1.0, cooldown_s=0.5, initial=2)
    decisions = simulate(policy, [400] + [0] * 300, per_worker=5)
    targets = [d.target for d in decisions]
    assert max(targets) == 8
    assert targets[-1] == 1
    peak = targets.index(8)
    assert targets[peak:] == sorted(targets[peak:], reverse=True)  # rises, then only falls
    downs = [d for d in changes(decisions) if d.time_s > decisions[peak].time_s]
    assert [d.target for d in downs] == list(range(7, 0, -1))  # one worker at a time
    drained = next(d.time_s for d in decisions if "idle" in d.reason)
    assert downs[0].time_s >= drained + 1.0 - 1e-9
    for before, after in pairwise(downs):
        assert after.time_s - before.time_s >= 1.0 - 1e-9  # each step down needs idle_time_s afresh


def test_noisy_backlog_around_threshold_does_not_flap():
    rng = random.Random(7)
    policy = ScalingPolicy(1, 8, queue_threshold=10, idle_time_s=1.0, cooldown_s=0.5, initial=2)
    decisions = []
    for i in range(1000):
        target = policy.target
        backlog = 10 + rng.randint(-4, 4)
        decisions.append(policy.decide(Observation(i * DT, backlog, target, target, rng.random() * 0.4)))
    moved = changes(decisions)
    assert len(moved) <= 8 - 2
    assert all(d.reason.startswith("backlog") for d in moved)  # only ever up: the workers are needed


def test_bursty_backlog_with_short_idle_gaps_does_not_flap():
    rng = random.Random(11)
    policy = ScalingPolicy(1, 8, queue_threshold=10, idle_time_s=1.0, cooldown_s=0.5, initial=4)
    decisions = []
    for i in range(1000):
        target = policy.target
        if (i // 3) % 2:  # 0.3 s with work, 0.3 s without, around the threshold
            obs = Observation(i * DT, rng.randint(8, 14), target, target, 0.0)
        else:
            obs = Observation(i * DT, 0, target, rng.randint(0, target - 1), rng.random())
        decisions.append(policy.decide(obs))
    assert len(changes(decisions)) <= 8 - 4
    assert all(d.target >= 4 for d in decisions)


def test_all_busy_with_empty_backlog_does_not_shrink():
    policy = ScalingPolicy(1, 8, idle_time_s=0.5, cooldown_s=0.0, initial=6)
    decisions = [policy.decide(Observation(i * DT, 0, 6, 6)) for i in range(200)]
    assert {d.target for d in decisions} == {6}
    assert "steady" in decisions[-1].reason


def test_one_idle_worker_with_empty_backlog_shrinks_by_one():
    policy = ScalingPolicy(1, 8, idle_time_s=0.5, cooldown_s=0.0, initial=6)
    decisions = []
    for i in range(100):
        target = policy.target
        decisions.append(policy.decide(Observation(i * DT, 0, target, 5)))  # five tasks keep running
    assert decisions[-1].target == 5
    assert [d.target for d in changes(decisions)] == [5]


def test_lagging_actuation_keeps_its_own_target():
    policy = ScalingPolicy(1, 8, queue_threshold=10, idle_time_s=0.5, cooldown_s=0.2, initial=2)
    first = policy.decide(Observation(0.0, 100, 2, 2))
    assert first.changed and first.target == 4
    # the two new workers have not started: the backlog keeps growing, the target is kept, not repeated
    waiting = [policy.decide(Observation(0.1 * i, 100 + 10 * i, 2, 2)) for i in range(1, 20)]
    assert {d.target for d in waiting} == {4}
    assert "waiting for actuation (2 of 4 active)" in waiting[-1].reason
    assert policy.target == 4
    # actuation catches up: growth resumes from the policy's target, not from obs.active
    caught_up = policy.decide(Observation(2.0, 400, 4, 4))
    assert caught_up.target == 8
    # more workers than the target are still active (parking lags): the surplus is not idleness
    policy = ScalingPolicy(1, 8, idle_time_s=0.5, cooldown_s=0.0, initial=4)
    decisions = [policy.decide(Observation(0.1 * i, 0, 4, 3)) for i in range(10)]
    assert decisions[-1].target == 3
    later = [policy.decide(Observation(1.0 + 0.1 * i, 0, 4, 3)) for i in range(30)]
    assert {d.target for d in later} == {3}


def test_decision_reason_names_backlog_threshold_and_step():
    policy = ScalingPolicy(1, 8, queue_threshold=10, initial=3)
    decision = policy.decide(Observation(0.0, 120, 3, 3))
    assert decision == Decision(6, "backlog 120 rising > threshold 10: 3 -> 6 workers", 0.0, changed=True)


def test_draining_backlog_waits():
    policy = ScalingPolicy(1, 8, queue_threshold=10, cooldown_s=0.0, drain_horizon_s=1.0, initial=3)
    backlogs = [300, 240, 180, 120, 60, 5]  # -600/s: down to the threshold well within the horizon
    decisions = [policy.decide(Observation(0.1 * i, b, policy.target, 3)) for i, b in enumerate(backlogs)]
    assert [d.target for d in decisions] == [6] * 6
    assert "draining" in decisions[2].reason


def test_slowly_falling_backlog_still_grows():
    policy = ScalingPolicy(1, 8, queue_threshold=10, cooldown_s=0.0, drain_horizon_s=1.0, initial=2)
    backlogs = [1000, 990, 980, 970]  # -100/s: ten seconds from the threshold
    decisions = [policy.decide(Observation(0.1 * i, b, policy.target, 2)) for i, b in enumerate(backlogs)]
    assert [d.target for d in decisions] == [4, 8, 8, 8]
    assert "at maximum" in decisions[-1].reason


def test_cooldown_holds_changes():
    policy = ScalingPolicy(1, 64, queue_threshold=1, cooldown_s=1.0, initial=1)
    decisions = [
        policy.decide(Observation(0.1 * i, 1000 + i, policy.target, policy.target)) for i in range(31)
    ]
    assert [(round(d.time_s, 1), d.target) for d in changes(decisions)] == [
        (0.0, 2),
        (1.0, 4),
        (2.0, 8),
        (3.0, 16),
    ]
    assert "cooldown" in decisions[5].reason


@pytest.mark.parametrize("seed", range(20))
def test_bounds_and_step_rules_hold_on_random_traces(seed):
    rng = random.Random(seed)
    minimum = rng.randint(1, 4)
    maximum = rng.randint(minimum, 12)
    cooldown = rng.choice([0.0, 0.2, 0.5])
    idle_time = rng.choice([0.0, 0.3, 1.0])
    policy = ScalingPolicy(
        minimum,
        maximum,
        queue_threshold=rng.randint(0, 20),
        idle_time_s=idle_time,
        cooldown_s=cooldown,
    )
    assert minimum <= policy.target <= maximum
    previous, last_change, t = policy.target, None, 0.0
    for _ in range(500):
        t += rng.choice([0.0, 0.05, 0.1, 0.5])
        active = rng.randint(0, maximum + 2)
        obs = Observation(
            t,
            rng.choice([0, 0, rng.randint(0, 50), rng.randint(0, 5000)]),
            active,
            rng.randint(0, active),
            rng.random(),
        )
        decision = policy.decide(obs)
        assert minimum <= decision.target <= maximum
        assert decision.target == policy.target
        assert decision.changed == (decision.target != previous)
        if decision.changed:
            if last_change is not None:
                assert t - last_change >= cooldown
            assert decision.target == previous - 1 or previous < decision.target <= 2 * previous
            last_change = t
        previous = decision.target


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"minimum": 0}, "minimum"),
        ({"minimum": 2, "maximum": 1}, "maximum"),
        ({"minimum": 1.5}, "minimum"),
        ({"maximum": 4, "queue_threshold": -1}, "queue_threshold"),
        ({"maximum": 4, "idle_time_s": -0.1}, "idle_time_s"),
        ({"maximum": 4, "cooldown_s": -1}, "cooldown_s"),
        ({"maximum": 4, "initial": 5}, "initial"),
        ({"minimum": 2, "maximum": 4, "initial": 1}, "initial"),
        ({"maximum": 4, "idle_fraction_high": 1.5}, "idle_fraction_high"),
        ({"maximum": 4, "trend_window": 1}, "trend_window"),
        ({"maximum": 4, "drain_horizon_s": -1.0}, "drain_horizon_s"),
        ({"maximum": 4, "idle_time_s": float("nan")}, "idle_time_s"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ScalingPolicy(**kwargs)


@pytest.mark.parametrize(
    ("minimum", "maximum", "initial"),
    [(1, 1, 1), (1, 2, 2), (1, 3, 2), (1, 8, 5), (4, 5, 4), (1, 9, 5)],
)
def test_default_initial_is_the_originals_half_plus_one(minimum, maximum, initial):
    assert ScalingPolicy(minimum, maximum).target == initial


def test_default_maximum_is_at_least_minimum():
    assert ScalingPolicy().maximum >= 1
    assert ScalingPolicy(10_000).maximum == 10_000


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"backlog": -1}, "backlog"),
        ({"active": -1}, "active"),
        ({"busy": -1}, "busy"),
        ({"idle_fraction": 1.1}, "idle_fraction"),
        ({"time_s": float("inf")}, "time_s"),
    ],
)
def test_observation_errors_name_the_field(kwargs, name):
    values = {"time_s": 0.0, "backlog": 0, "active": 1, "busy": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        Observation(**values)


def test_time_going_backwards_is_an_error():
    policy = ScalingPolicy(1, 4)
    policy.decide(Observation(1.0, 0, 1, 1))
    with pytest.raises(ValueError, match="backwards"):
        policy.decide(Observation(0.5, 0, 1, 1))


def test_timeline_keeps_only_changes():
    policy = ScalingPolicy(1, 8, queue_threshold=10, idle_time_s=1.0, cooldown_s=0.5, initial=2)
    decisions = simulate(policy, [400] + [0] * 300, per_worker=5)
    timeline = active_workers_timeline(decisions)
    assert timeline == policy.timeline
    assert timeline[0] == (0.0, decisions[0].target)
    assert decisions[0].changed  # the first decision already grew: it starts the timeline
    assert len(timeline) == len(changes(decisions))
    assert all(a[1] != b[1] for a, b in pairwise(timeline))
    assert active_workers_timeline([(0.0, 3), (0.5, 3), (1.0, 6), (1.5, 6), (2.0, 4)]) == [
        (0.0, 3),
        (1.0, 6),
        (2.0, 4),
    ]
    assert active_workers_timeline([]) == []
    assert format_timeline([(0.0, 3), (0.52, 6), (3.1, 4)]) == "3 @0.00s -> 6 @0.52s -> 4 @3.10s"
    assert format_timeline([]) == ""


def test_set_bounds_clamps_the_target_and_keeps_the_rules() -> None:
    policy = ScalingPolicy(1, 2, idle_time_s=0.3, cooldown_s=0.5)
    assert policy.target == 2
    policy.set_bounds(1, 6)  # more workers joined: the target stays until the load says more
    assert policy.target == 2
    decision = policy.decide(Observation(time_s=0.0, backlog=100, active=2, busy=2))
    assert decision.changed and decision.target == 4
    policy.set_bounds(2, 3)  # an agent left: clamped at once
    assert policy.target == 3
    with pytest.raises(ValueError, match="maximum must be at least 2"):
        policy.set_bounds(2, 1)
