"""The fleet's registry (mappings/redis/agents.py) on a real server: records round-trip,
expire, and are never shown when forged, signed with another key, or copied to another
agent's key."""

from __future__ import annotations

import pytest
from redis_support import redis_server_fixture  # noqa: F401 - the fixture

from dispel4py.dynamic.signing import Signer
from dispel4py.mappings.redis.agents import (
    AGENT_PREFIX,
    AgentRecord,
    new_agent_id,
    publish_agent,
    read_agents,
    remove_agent,
)

pytestmark = pytest.mark.timeout(60)
KEY = b"k" * 32


@pytest.fixture
def client(redis_server):
    with redis_server.client() as c:
        c.flushall()
        yield c


def _record(**changes) -> AgentRecord:
    fields = {"agent_id": new_agent_id(), "host": "h1", "pid": 42, "tags": ["gpu"], "max": 4, "active": 2}
    return AgentRecord(**{**fields, **changes})


def test_a_record_round_trips_and_leaves(client) -> None:
    record = _record(runs=["r1"], served=3)
    publish_agent(client, Signer(KEY), record)
    agents, forged = read_agents(client, Signer(KEY))
    assert forged == 0 and [a.agent_id for a in agents] == [record.agent_id]
    assert agents[0] == record and agents[0].updated > 0
    remove_agent(client, record)
    assert read_agents(client, Signer(KEY)) == ([], 0)


def test_a_record_expires(client) -> None:
    publish_agent(client, Signer(KEY), _record(), ttl_ms=50)
    assert 0 < client.pttl(next(iter(client.scan_iter(match=AGENT_PREFIX + "*")))) <= 50


def test_forged_other_keys_and_copies_are_not_agents(client) -> None:
    good = _record(host="a")
    publish_agent(client, Signer(KEY), good)
    publish_agent(client, Signer(b"x" * 32), _record(host="b"))  # another fleet's key
    client.set(AGENT_PREFIX + "junk", b"not a record")
    client.set(AGENT_PREFIX + "copy", client.get(good.key))  # a copy under another name
    agents, forged = read_agents(client, Signer(KEY))
    assert [a.host for a in agents] == ["a"] and forged == 3


def test_agents_are_sorted_by_host(client) -> None:
    for host in ("c", "a", "b"):
        publish_agent(client, Signer(KEY), _record(host=host))
    assert [a.host for a in read_agents(client, Signer(KEY))[0]] == ["a", "b", "c"]
