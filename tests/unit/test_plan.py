"""make_plan: validation, instance counts (spec §2.3), placement and inputs."""

from __future__ import annotations

import functools
import importlib
import itertools
import sys

import pytest

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.engine.placement import place
from dispel4py.engine.plan import make_plan
from dispel4py.errors import GraphError, InputError, UsageError
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_ids")]

EXAMPLES = "dispel4py.examples.graph_testing."


def example_graph(name: str) -> WorkflowGraph:
    """A fresh copy of an example graph, ids numbered as in a fresh interpreter."""
    sys.modules.pop(EXAMPLES + name, None)
    try:
        return importlib.import_module(EXAMPLES + name).graph
    finally:
        sys.modules.pop(EXAMPLES + name, None)


def original_plan(*args, **kwargs):
    """The plan with ``--original-layout``: the original's rule (engine/placement.py)."""
    return make_plan(*args, place_fn=functools.partial(place, original_layout=True), **kwargs)


def counts(plan) -> dict[str, int]:
    return {pe: len(iids) for pe, iids in plan.instances.items()}


def pipeline(n_consumers: int = 2) -> tuple[WorkflowGraph, list]:
    graph = WorkflowGraph()
    pes = [t.TestProducer()] + [t.TestOneInOneOut() for _ in range(n_consumers)]
    for a, b in itertools.pairwise(pes):
        graph.connect(a, "output", b, "input")
    return graph, pes


# -- the original's formula (spec §2.3 worked examples) ----------------------------------------
def test_pipeline_test_12():
    plan = original_plan(example_graph("pipeline_test"), None, 12)
    assert counts(plan) == {
        "TestProducer0": 1,
        "TestOneInOneOut1": 2,
        "TestOneInOneOut2": 2,
        "TestOneInOneOut3": 2,
        "TestOneInOneOut4": 2,
        "TestOneInOneOut5": 2,
    }
    assert not plan.placement.partitioned
    assert plan.num_workers == 11


def test_describe_gives_the_processes_line():
    plan = original_plan(example_graph("pipeline_test"), None, 12)
    assert plan.describe() == (
        "Processes: {'TestProducer0': range(0, 1), 'TestOneInOneOut1': range(1, 3), "
        "'TestOneInOneOut2': range(3, 5), 'TestOneInOneOut3': range(5, 7), "
        "'TestOneInOneOut4': range(7, 9), 'TestOneInOneOut5': range(9, 11)}"
    )


def test_teecopy_12():
    plan = original_plan(example_graph("teecopy"), None, 12)
    assert counts(plan) == {"TestProducer0": 1, "TestOneInOneOut1": 5, "TestOneInOneOut2": 5}


def test_grouping_alltoone_12_explicit():
    plan = make_plan(example_graph("grouping_alltoone"), None, 12)
    assert plan.describe() == (
        "Processes: {'TestProducer0': range(0, 1), 'TestOneInOneOut1': range(1, 6), "
        "'TestOneInOneOut2': range(6, 11)}"
    )


def test_word_count_filter_12_explicit():
    plan = make_plan(example_graph("word_count_filter"), None, 12)
    assert counts(plan) == {"RandomWordProducer0": 1, "RandomFilter1": 5, "WordCounter2": 3}


def test_one_worker_per_instance_when_workers_suffice():
    plan = original_plan(example_graph("pipeline_test"), None, 11)
    assert set(counts(plan).values()) == {1, 2}
    assert plan.placement.worker_of == list(range(11))
    assert plan.num_workers == 11


def test_one_instance_each_is_not_the_layout_any_more():
    """Workers suffice but the formula gives 1 each: replicate the chain (test_placement_layout)."""
    plan = make_plan(example_graph("pipeline_test"), None, 6)
    assert plan.placement.partitioned
    assert counts(plan) == {"TestProducer0": 1, **{f"TestOneInOneOut{i}": 6 for i in range(1, 6)}}


def test_instance_ids_are_contiguous_in_graph_order():
    plan = original_plan(example_graph("teecopy"), None, 12)
    flat = [i for iids in plan.instances.values() for i in iids]
    assert flat == list(range(len(flat)))
    assert [plan.pe_of(i) for i in plan.instances["TestOneInOneOut1"]] == ["TestOneInOneOut1"] * 5


def test_single_pe_is_not_scaled():
    graph, (_, _a, b) = pipeline(2)
    b.single = True
    # the original formula: int((10 - 1 source) / (3 - 1)) = 4 each for the scalable PEs
    assert counts(original_plan(graph, None, 10)) == {
        "TestProducer0": 1,
        "TestOneInOneOut1": 4,
        "TestOneInOneOut2": 1,
    }


def test_global_and_all_inputs_are_not_scaled():
    graph, (_, _a, b) = pipeline(2)
    b.inputconnections["input"]["grouping"] = "global"
    assert counts(make_plan(graph, None, 10))["TestOneInOneOut2"] == 1
    b.inputconnections["input"]["grouping"] = "all"
    assert counts(make_plan(graph, None, 10))["TestOneInOneOut2"] == 1
    assert counts(make_plan(graph, None, 2))["TestOneInOneOut2"] == 1


# -- partitioned placement ---------------------------------------------------------------
def test_fewer_workers_than_instances_replicates_the_chain_on_every_worker():
    plan = make_plan(example_graph("pipeline_test"), None, 3)
    placement = plan.placement
    assert placement.partitioned
    assert counts(plan)["TestProducer0"] == 1
    for pe in [f"TestOneInOneOut{i}" for i in range(1, 6)]:
        workers = sorted(plan.worker_of(i) for i in plan.instances[pe])
        assert workers == [0, 1, 2], pe
    assert plan.num_workers == 3
    assert set(placement.worker_of) == {0, 1, 2}


def test_partitioned_keeps_explicit_numprocesses_exact():
    plan = make_plan(example_graph("grouping_alltoone"), None, 3)
    assert plan.placement.partitioned
    assert counts(plan) == {"TestProducer0": 1, "TestOneInOneOut1": 5, "TestOneInOneOut2": 5}
    assert all(0 <= w < 3 for w in plan.placement.worker_of)


def test_partitioned_keeps_explicit_numprocesses_exact_word_count_filter():
    plan = make_plan(example_graph("word_count_filter"), None, 2)
    assert plan.placement.partitioned
    assert counts(plan) == {"RandomWordProducer0": 1, "RandomFilter1": 5, "WordCounter2": 3}
    assert set(plan.placement.worker_of) <= {0, 1}


def test_partitioned_does_not_scale_global_or_all_inputs():
    graph, (_, _a, b) = pipeline(2)
    b.inputconnections["input"]["grouping"] = "global"
    plan = make_plan(graph, None, 2, partitioned=True)
    assert counts(plan)["TestOneInOneOut2"] == 1
    assert counts(plan)["TestOneInOneOut1"] == 2


def test_one_worker_hosts_everything():
    plan = make_plan(example_graph("grouping_onetoall"), None, 1)
    assert counts(plan) == {"TestProducer0": 1, "TestOneInOneOut1": 2}
    assert set(plan.placement.worker_of) == {0}
    assert plan.num_workers == 1


def test_graph_partitions_honoured_with_partitioned_flag():
    plan = make_plan(example_graph("partition_parallel_pipeline"), None, 4, partitioned=True)
    placement = plan.placement
    assert placement.partitioned
    source_part = ["TestProducer0", "TestOneInOneOut1", "TestOneInOneOut2"]
    for pe in source_part:
        assert len(plan.instances[pe]) == 1
    workers = {plan.worker_of(plan.instances[pe][0]) for pe in source_part}
    assert len(workers) == 1
    c3_workers = [plan.worker_of(i) for i in plan.instances["TestOneInOneOut3"]]
    assert len(c3_workers) == 3
    assert len(set(c3_workers)) == 3
    assert workers.isdisjoint(c3_workers)
    assert plan.num_workers == 4


def test_graph_partitions_ignored_without_partitioned_flag():
    plan = original_plan(example_graph("partition_parallel_pipeline"), None, 12)
    assert not plan.placement.partitioned
    assert len(set(plan.placement.worker_of)) == len(plan.placement.worker_of)


def test_partitioned_flag_without_partitions_splits_sources_from_the_rest():
    plan = make_plan(example_graph("pipeline_test"), None, 4, partitioned=True)
    assert plan.placement.partitioned
    producer_worker = plan.worker_of(plan.instances["TestProducer0"][0])
    for pe in [f"TestOneInOneOut{i}" for i in range(1, 6)]:
        assert len(plan.instances[pe]) == 4
        assert sorted(plan.worker_of(i) for i in plan.instances[pe]) == [0, 1, 2, 3]
    assert producer_worker in range(4)


def test_hosted_lists_instances_in_topological_order():
    plan = make_plan(example_graph("pipeline_test"), None, 2)
    for worker in range(plan.num_workers):
        pes = [plan.pe_of(i) for i in plan.hosted(worker)]
        order = [plan.order.index(pe) for pe in pes]
        assert order == sorted(order)
    assert sorted(i for w in range(plan.num_workers) for i in plan.hosted(w)) == list(
        range(len(plan.placement.pe_of))
    )


# -- end of stream ---------------------------------------------------------------------------
def test_eos_expected_counts_one_marker_per_edge_and_source_instance():
    plan = make_plan(example_graph("grouping_alltoone"), None, 12)
    assert [plan.eos_expected(i) for i in plan.instances["TestProducer0"]] == [0]
    assert [plan.eos_expected(i) for i in plan.instances["TestOneInOneOut1"]] == [1] * 5
    assert [plan.eos_expected(i) for i in plan.instances["TestOneInOneOut2"]] == [5] * 5


def test_eos_expected_with_two_edges_into_one_input():
    plan = make_plan(example_graph("grouping_split_merge"), None, 12)
    counter = plan.instances["WordCounter3"]
    assert [plan.eos_expected(i) for i in counter] == [2 * len(plan.instances["RandomFilter1"])] * len(
        counter
    )


def test_eos_expected_pipeline_12():
    plan = original_plan(example_graph("pipeline_test"), None, 12)
    assert [plan.eos_expected(i) for i in plan.instances["TestOneInOneOut1"]] == [1, 1]
    assert [plan.eos_expected(i) for i in plan.instances["TestOneInOneOut2"]] == [2, 2]


# -- validation --------------------------------------------------------------------------------
def test_unknown_output_port():
    graph = WorkflowGraph()
    prod, cons = t.TestProducer(), t.TestOneInOneOut()
    graph.connect(prod, "ouput", cons, "input")
    with pytest.raises(GraphError) as info:
        make_plan(graph, None, 1)
    message = str(info.value)
    assert "TestProducer0" in message and "'ouput'" in message
    assert "did you mean 'output'" in message


def test_unknown_input_port():
    graph = WorkflowGraph()
    prod, last = t.TestProducer(), t.TestTwoInOneOut()
    graph.connect(prod, "output", last, "inptu0")
    with pytest.raises(GraphError) as info:
        make_plan(graph, None, 1)
    message = str(info.value)
    assert "TestTwoInOneOut1" in message and "'inptu0'" in message
    assert "did you mean 'input0'" in message
    assert "input0" in message and "input1" in message


def test_cycle_is_rejected():
    graph = WorkflowGraph()
    a, b = t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(t.TestProducer(), "output", a, "input")
    graph.connect(a, "output", b, "input")
    graph.connect(b, "output", a, "input")
    with pytest.raises(GraphError, match="cycle"):
        make_plan(graph, None, 4)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", None])
def test_bad_numprocesses(bad):
    graph, (_, a, _) = pipeline(2)
    a.numprocesses = bad
    with pytest.raises(GraphError, match="TestOneInOneOut1"):
        make_plan(graph, None, 4)


def test_zero_workers():
    graph, _ = pipeline(1)
    with pytest.raises(UsageError):
        make_plan(graph, None, 0)


def test_partitions_naming_an_unknown_pe():
    graph, (prod, a, b) = pipeline(2)
    graph.partitions = [[prod], [a, b, t.TestOneInOneOut()]]
    with pytest.raises(GraphError, match="not in the workflow"):
        make_plan(graph, None, 3, partitioned=True)


def test_partitions_listing_a_pe_twice():
    graph, (prod, a, b) = pipeline(2)
    graph.partitions = [[prod, a], [a, b]]
    with pytest.raises(GraphError, match="TestOneInOneOut1"):
        make_plan(graph, None, 3, partitioned=True)


def test_partitions_missing_a_pe():
    graph, (prod, a, _b) = pipeline(2)
    graph.partitions = [[prod], [a]]
    with pytest.raises(GraphError, match="TestOneInOneOut2"):
        make_plan(graph, None, 3, partitioned=True)


def test_partitions_may_name_pes_by_id():
    graph, (_prod, _a, _b) = pipeline(2)
    graph.partitions = [["TestProducer0"], ["TestOneInOneOut1", "TestOneInOneOut2"]]
    plan = make_plan(graph, None, 3, partitioned=True)
    assert len(plan.instances["TestOneInOneOut1"]) == 2


def test_two_pes_with_one_id():
    graph, (_prod, a, b) = pipeline(2)
    b.id = a.id
    with pytest.raises(GraphError, match="TestOneInOneOut1"):
        make_plan(graph, None, 3)


def test_make_plan_flattens_composites():
    from dispel4py.base import create_iterative_chain

    def inc(x):
        return x + 1

    chain = create_iterative_chain([inc])
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", chain, "input")
    plan = make_plan(graph, None, 1)
    assert plan.order == ["TestProducer1", "PE_inc0"]


# -- inputs ---------------------------------------------------------------------------------
def test_inputs_keyed_by_object_name_or_id_are_normalised_to_ids():
    graph = WorkflowGraph()
    p1, p2, p3 = t.TestProducer(), ProducerPE(), t.TestProducer()
    p2.name = "read"
    sink = t.TestTwoInOneOut()
    graph.connect(p1, "output", sink, "input0")
    graph.connect(p2, "output", sink, "input1")
    graph.add(p3)
    plan = make_plan(graph, {p1: 3, "read": [{"input": "a.txt"}], "TestProducer3": 2}, 1)
    assert plan.inputs == {"TestProducer0": 3, "read2": [{"input": "a.txt"}], "TestProducer3": 2}


def test_name_key_goes_to_the_first_pe_of_that_name():
    graph = WorkflowGraph()
    p1, p2 = t.TestProducer(), t.TestProducer()
    graph.add(p1)
    graph.add(p2)
    plan = make_plan(graph, {"TestProducer": 4}, 1)
    assert plan.inputs["TestProducer0"] == 4


def test_sources_without_inputs_run_once():
    graph, _ = pipeline(1)
    assert make_plan(graph, None, 1).inputs == {"TestProducer0": 1}
    assert make_plan(graph, {}, 1).inputs == {"TestProducer0": 1}


def test_tuple_of_dicts_is_accepted_as_a_list():
    graph, _ = pipeline(1)
    assert make_plan(graph, {"TestProducer0": ({}, {})}, 1).inputs == {"TestProducer0": [{}, {}]}


def test_unknown_input_key_lists_pes():
    graph, _ = pipeline(2)
    with pytest.raises(InputError) as info:
        make_plan(graph, {"TestProducr0": 3}, 1)
    message = str(info.value)
    assert "'TestProducr0'" in message
    assert "TestProducer0, TestOneInOneOut1, TestOneInOneOut2" in message
    assert "did you mean 'TestProducer0'" in message


def test_pe_object_not_in_graph_is_an_unknown_key():
    graph, _ = pipeline(1)
    stranger = t.TestProducer()
    with pytest.raises(InputError):
        make_plan(graph, {stranger: 3}, 1)


@pytest.mark.parametrize("value", [-1, "3", 2.5, None, True, {"a": 1}])
def test_bad_input_values(value):
    graph, _ = pipeline(1)
    with pytest.raises(InputError, match="TestProducer0"):
        make_plan(graph, {"TestProducer0": value}, 1)


def test_zero_iterations_is_allowed():
    graph, _ = pipeline(1)
    assert make_plan(graph, {"TestProducer0": 0}, 1).inputs == {"TestProducer0": 0}


def test_inputs_to_a_non_source_pe():
    graph, (_, _a) = pipeline(1)
    plan = make_plan(graph, {"TestOneInOneOut1": [{"input": 5}]}, 1)
    assert plan.inputs["TestOneInOneOut1"] == [{"input": 5}]


# -- collect ---------------------------------------------------------------------------------
def test_collect_defaults_to_unconnected_outputs():
    graph, _ = pipeline(2)
    assert make_plan(graph, None, 1).collect == {("TestOneInOneOut2", "output")}


def test_collect_explicit_and_validated():
    graph, _ = pipeline(2)
    plan = make_plan(graph, None, 1, collect={"TestOneInOneOut1": ["output"]})
    assert plan.collect == {("TestOneInOneOut1", "output")}
    with pytest.raises(UsageError, match="Nope"):
        make_plan(graph, None, 1, collect={"Nope": ["output"]})
    with pytest.raises(UsageError, match="outptu"):
        make_plan(graph, None, 1, collect={"TestOneInOneOut1": ["outptu"]})


def test_plan_is_picklable():
    import pickle

    class_free_graph = example_graph("pipeline_test")
    plan = make_plan(class_free_graph, None, 3)
    clone = pickle.loads(pickle.dumps(plan))
    assert clone.instances == plan.instances
    assert clone.inputs == plan.inputs


def test_iterative_pe_numprocesses_attribute_settable():
    pe = IterativePE()
    pe.numprocesses = 3
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", pe, "input")
    assert len(make_plan(graph, None, 10).instances[pe.id]) == 3
