"""Input values are checked before anything runs: list elements, and inputs of non-source PEs.

A non-source PE (one with a connected input) may be fed directly (B11 fixed): its dicts are
items on its inputs, so each must name one or more of its declared inputs, and it cannot run
``{}`` iterations. Source PEs get their dicts verbatim, whatever the keys.
"""

from __future__ import annotations

import itertools

import pytest

import dispel4py
from dispel4py.base import ProducerPE
from dispel4py.engine.inputs import normalise_inputs
from dispel4py.engine.plan import make_plan
from dispel4py.errors import InputError
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_ids")]


def pipeline(n_consumers: int = 2) -> WorkflowGraph:
    graph = WorkflowGraph()
    pes = [t.TestProducer()] + [t.TestOneInOneOut() for _ in range(n_consumers)]
    for a, b in itertools.pairwise(pes):
        graph.connect(a, "output", b, "input")
    return graph


class Recorder(ProducerPE):
    """A source that remembers whether it ran."""

    calls: list = []

    def _process(self, inputs):
        Recorder.calls.append(inputs)
        return 1


# -- list elements must be dicts ----------------------------------------------------------------
@pytest.mark.parametrize("value", [[5, 7], [{}, 3], ["a"], [None], [[{"input": 1}]]])
def test_list_elements_must_be_dicts(value):
    with pytest.raises(InputError) as info:
        make_plan(pipeline(1), {"TestProducer0": value}, 1)
    message = str(info.value)
    assert "TestProducer0" in message
    assert "not a dict" in message
    assert "a number of iterations" in message
    assert '[{"input": 5}]' in message


def test_the_bad_element_and_its_position_are_named():
    with pytest.raises(InputError, match=r"int 7 at position 1"):
        make_plan(pipeline(1), {"TestProducer0": [{}, 7]}, 1)


def test_normalise_inputs_checks_elements_directly():
    with pytest.raises(InputError, match="TestProducer0"):
        normalise_inputs(pipeline(1), {"TestProducer0": [5]})


def test_library_run_gives_the_same_input_error_before_anything_runs():
    Recorder.calls = []
    graph = WorkflowGraph()
    graph.connect(Recorder(), "output", t.TestOneInOneOut(), "input")
    with pytest.raises(InputError, match=r"Recorder0.*not a dict"):
        dispel4py.run(graph, inputs={"Recorder0": [5, 7]})
    assert Recorder.calls == []


def test_wrong_type_message_shows_both_forms():
    with pytest.raises(InputError) as info:
        make_plan(pipeline(1), {"TestProducer0": "3"}, 1)
    message = str(info.value)
    assert '{"TestProducer0": 3}' in message
    assert '{"TestProducer0": [{"input": 5}]}' in message
    assert "str '3'" in message


def test_source_dicts_are_passed_verbatim_whatever_the_keys():
    plan = make_plan(pipeline(1), {"TestProducer0": [{"anything": 1}, {}]}, 1)
    assert plan.inputs["TestProducer0"] == [{"anything": 1}, {}]


# -- non-source PEs -----------------------------------------------------------------------------
def test_non_source_pe_cannot_run_iterations():
    with pytest.raises(InputError) as info:
        make_plan(pipeline(2), {"TestOneInOneOut1": 3}, 1)
    message = str(info.value)
    assert "TestOneInOneOut1 has connected inputs (input)" in message
    assert "3 iterations" in message
    assert '{"TestOneInOneOut1": [{"input": 5}]}' in message
    assert "source PE (TestProducer0)" in message


@pytest.mark.parametrize("nothing", [0, []])
def test_non_source_pe_given_nothing_is_fine(nothing):
    plan = make_plan(pipeline(2), {"TestOneInOneOut1": nothing}, 1)
    assert plan.inputs["TestOneInOneOut1"] == nothing


def test_non_source_dict_naming_an_unknown_input():
    with pytest.raises(InputError) as info:
        make_plan(pipeline(2), {"TestOneInOneOut1": [{"input": 1}, {"inptu": 2}]}, 1)
    message = str(info.value)
    assert "input dict 1 for TestOneInOneOut1 names 'inptu'" in message
    assert "did you mean 'input'" in message
    assert "inputs of TestOneInOneOut1 are: input" in message


def test_non_source_empty_dict():
    with pytest.raises(InputError, match=r"empty dict at position 0.*TestOneInOneOut1"):
        make_plan(pipeline(2), {"TestOneInOneOut1": [{}]}, 1)


def test_non_source_pe_keyed_by_name_or_object():
    graph = pipeline(2)
    middle = next(n.obj for n in graph.nodes if n.obj.id == "TestOneInOneOut1")
    for key in ("TestOneInOneOut", middle):
        with pytest.raises(InputError, match="TestOneInOneOut1"):
            make_plan(graph, {key: [{"output": 1}]}, 1)


def test_unconnected_declared_input_of_a_non_source_pe_may_be_fed():
    graph = WorkflowGraph()
    sink = t.TestTwoInOneOut()
    graph.connect(t.TestProducer(), "output", sink, "input0")
    plan = make_plan(graph, {sink: [{"input1": 3}, {"input0": 1, "input1": 2}]}, 1)
    assert plan.inputs[sink.id] == [{"input1": 3}, {"input0": 1, "input1": 2}]
    with pytest.raises(InputError, match="inputs of TestTwoInOneOut1 are: input0, input1"):
        make_plan(graph, {sink: [{"input2": 3}]}, 1)


def test_library_run_feeds_a_non_source_pe():
    result = dispel4py.run(pipeline(2), {"TestProducer0": 2, "TestOneInOneOut2": [{"input": 50}]})
    assert sorted(result.outputs["TestOneInOneOut2"]["output"]) == [1, 2, 50]
