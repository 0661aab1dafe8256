"""Items on every mapping: every kind of value arrives intact (``None`` and falsy values,
tuples stay tuples, megabyte items), fan-out copies are isolated from each other, several
connections between the same two PEs, instance limits, and heavy cross-worker traffic."""

from __future__ import annotations

import functools

import pytest
from conformance_graphs import (
    fan_out_mutation,
    large_items,
    regrouped,
    two_connections_between_two_pes,
    typed_items,
    unscaled,
)
from conformance_support import by_name, run_on

pytestmark = pytest.mark.timeout(60)

N = 12
R = list(range(1, N + 1))

VALUES = [None, 0, "", [], {}, (1, 2), [3, (4, 5)], 2.5, "text", b"\x00bytes", True, -3, {"k": (1,)}]


def raw_items(outputs, name: str, output: str = "output") -> list:
    return by_name(outputs).get(name, {}).get(output, [])


def test_every_kind_of_value_arrives_intact(mapping_entry):
    k = len(VALUES)
    outputs = run_on(mapping_entry, functools.partial(typed_items, VALUES), {"source": k, "raw": k})
    recorded = raw_items(outputs, "record")
    assert sorted(map(repr, recorded)) == sorted(repr((type(v).__name__, v)) for v in VALUES)
    # Identity is an IterativePE: a None result means "no output", every other value passes
    relayed = raw_items(outputs, "relay")
    assert sorted(map(repr, relayed)) == sorted(repr(v) for v in VALUES if v is not None)


def test_several_connections_between_the_same_two_pes(mapping_entry):
    outputs = run_on(mapping_entry, two_connections_between_two_pes, {"pairs": N, "source": N})
    both = sorted(map(tuple, raw_items(outputs, "both")))
    assert both == sorted([("left", n) for n in R] + [("right", -n) for n in R])
    twice = sorted(map(tuple, raw_items(outputs, "twice")))
    assert twice == sorted([("left", n) for n in R] + [("right", n) for n in R])


def test_items_of_megabytes(mapping_entry):
    size, count = 2_000_000, 6
    outputs = run_on(mapping_entry, functools.partial(large_items, size), {"source": count})
    described = sorted(map(tuple, raw_items(outputs, "describe")))
    assert described == [(size, n, True) for n in range(1, count + 1)]


def test_fan_out_destinations_do_not_share_mutable_items(mapping_entry):
    outputs = run_on(mapping_entry, fan_out_mutation, {"numbers": N})
    assert sorted(raw_items(outputs, "bystander")) == [[n] for n in R]
    assert sorted(raw_items(outputs, "mutator")) == [[n, "mutated"] for n in R]


@pytest.mark.parametrize("attribute", ["single", "stateful"])
def test_single_and_stateful_pes_get_one_instance(mapping_entry, attribute):
    outputs = run_on(mapping_entry, functools.partial(unscaled, attribute), {"source": N})
    done = raw_items(outputs, "observer", "done")
    assert len(done) == 1, done
    assert done[0][1] == N
    assert sorted(item for _rank, item in raw_items(outputs, "observer", "seen")) == R


def test_heavy_traffic_through_two_group_by_stages(mapping_entry):
    """Thousands of items regrouped twice: credits and batching must neither lose nor hang.

    With one item per message (batch_size=1, credits=1) every item is a full credit cycle on
    every edge: 1500 items are 1500 cycles per edge, far past any queue's or stream's limit,
    without the 4000 that made dyn_redis's entry take 15 s quiet (60 s under load)."""
    one_per_message = isinstance(mapping_entry[1], dict) and mapping_entry[1].get("batch_size") == 1
    total = 1500 if one_per_message else 4000
    outputs = run_on(mapping_entry, functools.partial(regrouped, 3), {"source": total})
    seen = raw_items(outputs, "second", "seen")
    assert sorted(n for _rank, (_key, n) in seen) == list(range(1, total + 1))
    ranks: dict[str, set[int]] = {}
    for rank, (key, _n) in seen:
        ranks.setdefault(key, set()).add(rank)
    assert len(ranks) == 11 and all(len(r) == 1 for r in ranks.values()), ranks
    for stage in ("first", "second"):
        done = raw_items(outputs, stage, "done")
        assert len(done) == 3 and sum(c for _r, c in done) == total, (stage, done)
