"""Workflow inputs on every mapping (spec §1.1 provided inputs, §3.4).

The rule for roots: a source PE named in the inputs runs its given iterations or input
dicts; a source PE *not* named while another one is (or with no inputs at all) runs once
with ``{}``, as dispel4py always has. A non-source PE named in the inputs processes the
given dicts in addition to what its upstream PEs send.
"""

from __future__ import annotations

import time

import pytest
from conformance_graphs import echo, pipeline, two_roots
from conformance_support import build, by_name, items_of, run_on

import dispel4py

pytestmark = pytest.mark.timeout(60)

N = 10
R = list(range(1, N + 1))


def _timed(entry, inputs):
    start = time.monotonic()
    outputs = run_on(entry, pipeline, inputs)
    return outputs, time.monotonic() - start


def test_no_iterations_end_at_once_with_no_outputs(mapping_entry):
    """0 iterations and an empty list of input dicts: no outputs, and no wait for an idle
    timeout. Measured against a one-item run of the same entry just before, not against
    a fixed bound: starting spawned workers under load alone took 6-9 s. An idle timeout
    of a few seconds shows on a quiet machine (a run starts in well under a second)."""
    one, took_one = _timed(mapping_entry, {"source": 1})
    assert items_of(one, "last") == [2], one
    for nothing in (0, []):
        outputs, took = _timed(mapping_entry, {"source": nothing})
        assert outputs == {}, nothing
        said = f"an empty run ({nothing!r}) took {took:.1f} s, one item {took_one:.1f} s (idle timeout?)"
        assert took < 2 * took_one + 2, said


def test_source_given_a_list_of_input_dicts(mapping_entry):
    dicts = [{"a": 1}, {"b": 2, "c": 3}, {}]
    outputs = run_on(mapping_entry, echo, {"echo": dicts})
    assert sorted(items_of(outputs, "sink")) == sorted([[["a", 1]], [["b", 2], ["c", 3]], []])


def test_inputs_keyed_by_pe_id(mapping_entry):
    by_id = run_on(mapping_entry, pipeline, {"source0": N})
    assert sorted(items_of(by_id, "last")) == [2 * x for x in R]


def test_inputs_keyed_by_pe_object(in_process_entry):
    name, options = in_process_entry
    graph = build(pipeline)
    source = next(n.obj for n in graph.nodes if n.obj.name == "source")
    result = dispel4py.run(graph, {source: N}, name, **options)
    assert sorted(items_of(result.outputs, "last")) == [2 * x for x in R]


def test_root_without_input_runs_once_when_another_root_has_input(mapping_entry):
    """B10: the original blocked forever on the root that got no input."""
    outputs = run_on(mapping_entry, two_roots, {"root_a": N})
    assert sorted(items_of(outputs, "sink_a")) == R
    assert items_of(outputs, "sink_b") == [101]


def test_no_inputs_run_every_root_once(mapping_entry):
    outputs = run_on(mapping_entry, two_roots, None)
    assert {name: ports["output"] for name, ports in by_name(outputs).items()} == {
        "sink_a": [1],
        "sink_b": [101],
    }


def test_non_source_pe_fed_directly(mapping_entry):
    """B11: input dicts for a PE with inputs are processed like items on that input."""
    outputs = run_on(mapping_entry, pipeline, {"source": 3, "last": [{"input": 50}, {"input": 60}]})
    assert sorted(items_of(outputs, "last")) == [2, 4, 6, 100, 120]


def test_only_a_non_source_pe_fed(mapping_entry):
    """The source, not named, runs once; the middle PE gets its own input as well."""
    outputs = run_on(mapping_entry, pipeline, {"stage_b": [{"input": 7}, {"input": 8}]})
    assert sorted(items_of(outputs, "last")) == [2, 14, 16]
