"""``TAKE`` (redis/scripts.py) takes several short tasks at once only up to the worker's fair
share of what is queued, so that the last tasks of a stage spread over every worker instead
of going, a handful at a time, to the first few that ask. Run on a real redis-server."""

from __future__ import annotations

import os
import random

import pytest
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

from dispel4py.mappings.redis.scripts import TAKE

pytestmark = pytest.mark.timeout(60)

GROUP = "g"


def _take(client, stream: str, want: int, share: int) -> int:
    """How many entries one TAKE hands out (one stream, counts not read)."""
    found, entries, _ = client.eval(TAKE, 1, stream, GROUP, "c", 1, "0", "", want, share)  # one stream
    assert found == (1 if entries else 0)
    return len(entries)


def _queue(client, stream: str, n: int) -> None:
    client.delete(stream)
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for i in range(n):
        client.xadd(stream, {"i": str(i)})


@pytest.mark.parametrize(
    ("queued", "want", "share", "taken"),
    [
        (20, 16, 4, 5),  # a fair share of 20 among 4
        (40, 16, 1, 16),  # alone: all it asks for
        (3, 16, 4, 1),  # fewer than the workers: one each
        (20, 1, 4, 1),  # one task asked, one taken
        (0, 4, 4, 0),  # nothing queued
    ],
)
def test_a_merged_take_is_held_to_a_fair_share(
    redis_server: RedisServer, queued: int, want: int, share: int, taken: int
) -> None:
    with redis_server.client() as c:
        _queue(c, "q", queued)
        assert _take(c, "q", want, share) == taken


def test_workers_taking_in_turn_each_get_a_share_and_nothing_is_lost(redis_server: RedisServer) -> None:
    """Random queues and fleets: every entry is handed out once, no take exceeds what was
    asked, and the tail is spread (a take never gets more than its share of what is queued)."""
    seed = int(os.environ.get("D4PY_TAKE_SEED", random.randrange(1_000_000)))
    print(f"seed {seed} (D4PY_TAKE_SEED={seed} reproduces it)")
    rng = random.Random(seed)
    with redis_server.client() as c:
        for _ in range(20):
            queued, want, share = rng.randint(0, 200), rng.randint(1, 16), rng.randint(1, 12)
            _queue(c, "q", queued)
            left, total = queued, 0
            while left:
                got = _take(c, "q", want, share)
                assert 1 <= got <= want, (seed, queued, want, share, left, got)
                assert got <= max(1, left // share), (seed, queued, want, share, left, got)
                left, total = left - got, total + got
            assert total == queued and _take(c, "q", want, share) == 0
