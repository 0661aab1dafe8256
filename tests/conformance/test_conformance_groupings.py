"""Groupings and instance counts on every mapping (spec §2): which instance sees what.

Observers record their ``self.rank`` with every item (``seen``) and report from
postprocess how many items they processed (``done``), so one run shows how items were
spread over the instances.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import pytest
from conformance_graphs import (
    equal_keys_of_several_types,
    hash_stability,
    observed,
    observed_dicts,
    wide_chain,
)
from conformance_support import items_of, run_on

pytestmark = pytest.mark.timeout(60)

N = 30
R = list(range(1, N + 1))
KEYS = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"]


def seen_and_done(outputs, name: str = "observer") -> tuple[list[Any], dict[int, int]]:
    seen = items_of(outputs, name, "seen")
    done = items_of(outputs, name, "done")
    ranks = [rank for rank, _count in done]
    assert len(ranks) == len(set(ranks)), f"an instance ran postprocess twice: {done}"
    return seen, dict(done)


def ranks_by_key(seen: list[Any], key_of) -> dict[Any, set[int]]:
    result: dict[Any, set[int]] = {}
    for rank, item in seen:
        result.setdefault(key_of(item), set()).add(rank)
    return result


def test_shuffle_sends_every_item_to_exactly_one_instance(mapping_entry):
    outputs = run_on(mapping_entry, functools.partial(observed, None, 3), {"source": N})
    seen, done = seen_and_done(outputs)
    assert len(done) == 3
    assert sorted(item for _rank, item in seen) == R
    assert sum(done.values()) == N
    assert {rank for rank, _item in seen} <= set(done)


def test_group_by_sends_each_key_to_exactly_one_instance(mapping_entry):
    outputs = run_on(mapping_entry, functools.partial(observed, [0], 3, KEYS), {"source": N})
    seen, done = seen_and_done(outputs)
    assert len(done) == 3 and sum(done.values()) == N
    assert sorted(n for _rank, (_key, n) in seen) == R
    by_key = ranks_by_key(seen, lambda item: item[0])
    assert set(by_key) == set(KEYS)
    assert all(len(ranks) == 1 for ranks in by_key.values()), by_key
    # not vacuous: the keys are spread over more than one instance
    assert len(set().union(*by_key.values())) >= 2, by_key


def test_group_by_a_dict_key(mapping_entry):
    outputs = run_on(mapping_entry, observed_dicts, {"source": N})
    seen, done = seen_and_done(outputs)
    assert len(done) == 3 and sum(done.values()) == N
    by_key = ranks_by_key(seen, lambda item: item["k"])
    assert set(by_key) == {"x", "y", "z", "w"}
    assert all(len(ranks) == 1 for ranks in by_key.values()), by_key


def test_group_by_keys_that_compare_equal_meet(mapping_entry):
    """3, numpy.int64(3) and 3.0 are one key (as with the original's hash()); so are 'a'
    and numpy.str_('a')."""
    outputs = run_on(mapping_entry, equal_keys_of_several_types, {"source": 21})
    seen, done = seen_and_done(outputs)
    assert sum(done.values()) == 21
    by_key = ranks_by_key(seen, lambda item: item[0])
    assert set(by_key) == {3, "a", 7}
    assert all(len(ranks) == 1 for ranks in by_key.values()), by_key


def test_all_sends_every_item_to_every_instance(mapping_entry):
    outputs = run_on(mapping_entry, functools.partial(observed, "all", 3), {"source": N})
    seen, done = seen_and_done(outputs)
    assert len(done) == 3
    assert done == dict.fromkeys(done, N)
    per_rank: dict[int, list[int]] = {}
    for rank, item in seen:
        per_rank.setdefault(rank, []).append(item)
    assert set(per_rank) == set(done)
    assert all(sorted(items) == R for items in per_rank.values())


def test_global_sends_every_item_to_the_first_instance_only(mapping_entry):
    outputs = run_on(mapping_entry, functools.partial(observed, "global", 3), {"source": N})
    seen, done = seen_and_done(outputs)
    assert len(done) == 3, "every instance of a 'global' PE still runs (and postprocesses)"
    first = min(done)
    assert {rank for rank, _item in seen} == {first}
    assert sorted(item for _rank, item in seen) == R
    assert done == {rank: (N if rank == first else 0) for rank in done}


def test_more_instances_than_workers(mapping_entry):
    """numprocesses=5 (on two PEs) exceeds every entry's workers: all 5 instances run."""
    outputs = run_on(mapping_entry, functools.partial(wide_chain, 5), {"source": N})
    seen, done = seen_and_done(outputs)
    assert len(done) == 5, done
    assert sum(done.values()) == N
    assert sorted(item for _rank, item in seen) == R


@pytest.mark.parametrize("mapping", ["multi", "zmq_multi"])
def test_more_instances_than_two_workers(mapping):
    outputs = run_on((mapping, {"num": 2}), functools.partial(wide_chain, 5), {"source": N})
    seen, done = seen_and_done(outputs)
    assert len(done) == 5, done
    assert sorted(item for _rank, item in seen) == R


SPAWNED = [
    ("multi", {"num": 3, "start_method": "spawn"}),
    ("multi", {"num": 6, "start_method": "spawn"}),
    ("zmq_multi", {"num": 3, "start_method": "spawn"}),
]


@pytest.mark.parametrize(
    "entry", SPAWNED, ids=["multi-num=3-spawn", "multi-num=6-spawn", "zmq_multi-num=3-spawn"]
)
def test_group_by_is_stable_across_interpreters(entry, monkeypatch):
    """B2: equal string keys reach one instance from senders with different hash seeds."""
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    outputs = run_on(entry, hash_stability, {"source": 42})
    records = items_of(outputs, "recorder")
    assert len(records) == 42
    recorders: dict[str, set[int]] = {}
    senders: dict[str, set[tuple[int, int]]] = {}
    salted: dict[str, set[int]] = {}
    for key, rank, _pid, sender_rank, sender_pid, sender_hash, own_hash in records:
        recorders.setdefault(key, set()).add(rank)
        senders.setdefault(key, set()).add((sender_rank, sender_pid))
        salted.setdefault(key, set()).update((sender_hash, own_hash))
    # the test is meaningful: every key left from two relays in two processes ...
    assert all(len({pid for _r, pid in s}) == 2 for s in senders.values()), senders
    # ... whose salted hash() of the key differ
    assert any(len(h) > 1 for h in salted.values()), "all workers share one hash seed"
    assert all(len(ranks) == 1 for ranks in recorders.values()), recorders
    assert Counter(len(r) for r in recorders.values()) == Counter({1: 7})
