"""Purpose-built graph shapes on every mapping: fan-out, fan-in, multi-input PEs,
composites, several writes per input, many items, functions as PEs."""

from __future__ import annotations

import functools
from collections import Counter

import pytest
from conformance_graphs import (
    composite_pe,
    fan_in_multi_instance,
    fan_in_sources,
    fan_out,
    grouped_volume,
    iterative_chain,
    module_functions,
    nested_composites,
    pipeline,
    splitting,
    two_inputs,
)
from conformance_pes import Numbers, named
from conformance_support import by_name, items_of, run_on, run_result_on

from dispel4py.base import SimpleFunctionPE
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)

N = 15
R = list(range(1, N + 1))


def test_pipeline(mapping_entry):
    outputs = run_on(mapping_entry, pipeline, {"source": N})
    assert set(by_name(outputs)) == {"last"}
    assert sorted(items_of(outputs, "last")) == [2 * x for x in R]


def test_fan_out_copies_every_item_to_each_destination(mapping_entry):
    outputs = run_on(mapping_entry, fan_out, {"source": N})
    assert set(by_name(outputs)) == {"sink_a", "sink_b", "sink_c"}
    for sink in ("sink_a", "sink_b", "sink_c"):
        assert sorted(items_of(outputs, sink)) == R, sink


def test_fan_in_from_three_sources(mapping_entry):
    outputs = run_on(mapping_entry, fan_in_sources, {"p_a": N, "p_b": N, "p_c": N})
    expected = R + [100 + x for x in R] + [200 + x for x in R]
    assert sorted(items_of(outputs, "sink")) == sorted(expected)


@pytest.mark.parametrize("grouping", [None, [0]], ids=["shuffle", "group-by"])
def test_two_edges_into_one_multi_instance_input(mapping_entry, grouping):
    """B1: a 3-instance PE fed by two edges on one input must finish (and see everything)."""
    outputs = run_on(mapping_entry, functools.partial(fan_in_multi_instance, grouping), {"source": N})
    seen = items_of(outputs, "merge", "seen")
    done = items_of(outputs, "merge", "done")
    items = Counter(tuple(item) for _rank, item in seen)
    keys = ["a", "b", "c", "d", "e"]
    assert items == Counter({(keys[(n - 1) % 5], n): 2 for n in R})
    assert len({rank for rank, _count in done}) == 3, done
    assert sum(count for _rank, count in done) == 2 * N
    if grouping is not None:
        ranks_of_key: dict[str, set[int]] = {}
        for rank, (key, _n) in seen:
            ranks_of_key.setdefault(key, set()).add(rank)
        assert all(len(r) == 1 for r in ranks_of_key.values()), ranks_of_key


def test_pe_with_two_inputs_gets_one_input_per_call(mapping_entry):
    outputs = run_on(mapping_entry, two_inputs, {"source": N})
    got = items_of(outputs, "both")
    assert not [g for g in got if g[0] == "BAD"], "process() got a call with != 1 input"
    assert sorted(got) == sorted([["left", x] for x in R] + [["right", 2 * x] for x in R])


def test_create_iterative_chain(mapping_entry):
    outputs = run_on(mapping_entry, iterative_chain, {"source": N})
    assert set(by_name(outputs)) == {"PE_scale"}
    assert sorted(items_of(outputs, "PE_scale")) == [(x + 1) * 3 for x in R]


def test_composite_pe(mapping_entry):
    outputs = run_on(mapping_entry, composite_pe, {"source": N})
    assert set(by_name(outputs)) == {"after"}
    assert sorted(items_of(outputs, "after")) == [(x + 1) * 5 for x in R]


def test_nested_composites(mapping_entry):
    outputs = run_on(mapping_entry, nested_composites, {"source": N})
    assert set(by_name(outputs)) == {"after"}
    assert sorted(items_of(outputs, "after")) == [(x + 1) * 2 * 10 for x in R]


def test_pe_writing_several_items_per_input(mapping_entry):
    outputs = run_on(mapping_entry, splitting, {"source": N})
    assert sorted(items_of(outputs, "sink")) == sorted([x, j] for x in R for j in range(4))


def test_many_items_through_group_by_across_workers(volume_entry):
    """More items than a batch and a local inbox limit (1024), crossing workers both ways.

    Not on the batch_size=1 entries: test_heavy_traffic_through_two_group_by_stages runs
    more items through two group-by stages there (see ``VOLUME`` in conftest.py)."""
    total = 3000
    outputs = run_on(volume_entry, grouped_volume, {"source": total})
    after = items_of(outputs, "after")
    assert len(after) == total
    assert sorted(n for _rank, (_key, n) in after) == list(range(1, total + 1))
    ranks_of_key: dict[str, set[int]] = {}
    for rank, (key, _n) in after:
        ranks_of_key.setdefault(key, set()).add(rank)
    assert len(ranks_of_key) == 17
    assert all(len(r) == 1 for r in ranks_of_key.values()), ranks_of_key
    done = items_of(outputs, "grouped", "done")
    assert len(done) == 3 and sum(c for _r, c in done) == total


def test_module_level_lambda_and_closure(mapping_entry):
    """Functions defined at module level of an importable module work on every mapping."""
    outputs = run_on(mapping_entry, module_functions, {"source": N})
    assert sorted(items_of(outputs, "add_ten")) == [3 * x + 10 for x in R]


def test_local_lambda_and_closure_with_forked_workers(forked_entry):
    """Lambdas and closures made inside a test work when workers are forked."""
    offset = 7

    def add_offset(x):
        return x + offset

    def factory() -> WorkflowGraph:
        graph = WorkflowGraph()
        square = named(SimpleFunctionPE(lambda x: x * x), "square")
        shift = named(SimpleFunctionPE(add_offset), "shift")
        graph.connect(named(Numbers(), "source"), "output", square, "input")
        graph.connect(square, "output", shift, "input")
        return graph

    result = run_result_on(forked_entry, factory, {"source": N})
    assert sorted(items_of(result.outputs, "shift")) == [x * x + offset for x in R]
