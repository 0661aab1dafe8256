"""The spread of a fleet's active workers over its hosts (mappings/redis/fleet_scaling.py)."""

from __future__ import annotations

import random

import pytest

from dispel4py.mappings.redis.fleet_scaling import Host, allocate

pytestmark = pytest.mark.timeout(30)


def test_every_host_gets_its_minimum_then_the_rest_is_spread_evenly() -> None:
    hosts = [Host("a", (0, 1, 2), 0, 3), Host("b", (3, 4, 5), 1, 3), Host("c", (6, 7, 8), 0, 3)]
    assert allocate(1, hosts) == {"a": 0, "b": 1, "c": 0}
    assert allocate(3, hosts) == {"a": 1, "b": 1, "c": 1}
    assert allocate(7, hosts) == {"a": 3, "b": 2, "c": 2}
    assert allocate(99, hosts) == {"a": 3, "b": 3, "c": 3}


def test_max_below_the_processes_and_min_above_them_are_respected() -> None:
    hosts = [Host("a", (0, 1, 2, 3), 0, 2), Host("b", (4,), 3, 3)]  # b has one process only
    assert allocate(0, hosts) == {"a": 0, "b": 1}
    assert allocate(10, hosts) == {"a": 2, "b": 1}


def test_random_fleets_stay_within_bounds_and_fair() -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")
    for _ in range(500):
        hosts = []
        for i in range(rng.randint(1, 6)):
            size = rng.randint(1, 8)
            low = rng.randint(0, size)
            hosts.append(Host(f"h{i}", tuple(range(size)), low, rng.randint(max(1, low), size)))
        target = rng.randint(0, 50)
        counts = allocate(target, hosts)
        low, high = sum(h.low for h in hosts), sum(h.high for h in hosts)
        assert sum(counts.values()) == min(max(target, low), high), (seed, hosts, target)
        for h in hosts:
            assert h.low <= counts[h.name] <= h.high, (seed, h, counts)
        # fair: a host above its minimum never has 2 more than a host that still has room
        for h in hosts:
            for g in hosts:
                if counts[h.name] > h.low and counts[g.name] < g.high:
                    assert counts[h.name] - counts[g.name] <= 1, (seed, hosts, counts)
