"""``dispel4py.run`` works on fresh copies: the caller's graph is untouched, runs repeat.

The original's entry points keep the original's behaviour (state carried over, spec
Appendix A).
"""

from __future__ import annotations

import logging
import threading

import pytest

import dispel4py
from dispel4py.base import ConsumerPE, IterativePE, ProducerPE, create_iterative_chain
from dispel4py.core import WRITER
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.new.simple_process import process_and_return
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)


class Numbers(ProducerPE):
    def _process(self, inputs):
        for n in range(1, inputs.get("count", 10) + 1):
            self.write("output", n)


class Square(IterativePE):
    def _process(self, n):
        return n * n


class Total(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.total = 0

    def _process(self, n):
        self.total += n

    def _postprocess(self):
        self.write("total", self.total)


def squares():
    graph = WorkflowGraph()
    numbers, square, total = Numbers(), Square(), Total()
    graph.connect(numbers, "output", square, "input")
    graph.connect(square, "output", total, "input")
    return graph, numbers, total


@pytest.fixture
def sums(fresh_ids):
    return squares()


def total_of(result, total) -> list:
    assert result is not None
    return result.items(total.id, "total")


def test_running_twice_gives_the_same_result(sums):
    graph, numbers, total = sums
    inputs = {numbers: [{"count": 5}]}
    assert total_of(dispel4py.run(graph, inputs), total) == [55]
    assert total_of(dispel4py.run(graph, inputs), total) == [55]
    assert total_of(dispel4py.run(graph, inputs, "multi", num=3), total) == [55]


def test_the_callers_pes_are_untouched(sums):
    graph, numbers, total = sums
    dispel4py.run(graph, {numbers: [{"count": 5}]}, "simple")
    assert total.total == 0
    assert not hasattr(total, "rank")
    assert all(WRITER not in conn for conn in total.outputconnections.values())


def test_inputs_keyed_by_pe_objects_reach_the_copies(sums):
    graph, numbers, total = sums
    result = dispel4py.run(graph, {numbers: [{"count": 3}]}, "simple")
    assert total_of(result, total) == [14]


def test_input_lists_are_not_consumed(sums):
    graph, _, _ = sums
    given = [{"count": 2}, {"count": 1}]
    dispel4py.run(graph, {"Numbers": given}, "simple")
    assert given == [{"count": 2}, {"count": 1}]


def test_a_composite_is_left_as_built(fresh_ids):
    chain = create_iterative_chain([(lambda x, n: x + n, {"n": 1})])
    graph = WorkflowGraph()
    producer = t.TestProducer()
    graph.connect(producer, "output", chain, "input")
    nodes_before = len(graph.graph.nodes)
    result = dispel4py.run(graph, {producer: 3})
    assert result is not None
    assert [items["output"] for items in result.outputs.values()] == [[2, 3, 4]]
    assert len(graph.graph.nodes) == nodes_before  # not flattened in the caller's graph
    again = dispel4py.run(graph, {producer: 3})
    assert again is not None and again.outputs == result.outputs


def test_producer_state_does_not_leak_between_runs(fresh_ids):
    graph = WorkflowGraph()
    producer, copy = t.TestProducer(), t.TestOneInOneOut()
    graph.connect(producer, "output", copy, "input")
    first = dispel4py.run(graph, {producer: 3})
    second = dispel4py.run(graph, {producer: 3}, "multi", num=2)
    assert first is not None and second is not None
    assert first.items(copy.id) == [1, 2, 3]
    assert sorted(second.items(copy.id)) == [1, 2, 3]


# -- the original's entry points keep the original's behaviour -----------------------------------------
def test_process_and_return_carries_state_as_the_original(fresh_ids):
    """Spec Appendix A: PE objects keep state between runs of the original's API."""
    graph = WorkflowGraph()
    producer, copy = t.TestProducer(), t.TestOneInOneOut()
    graph.connect(producer, "output", copy, "input")
    assert process_and_return(graph, {producer: 5}) == {"TestOneInOneOut1": {"output": [1, 2, 3, 4, 5]}}
    assert process_and_return(graph, {"TestProducer": [{}, {}]}) == {"TestOneInOneOut1": {"output": [6, 7]}}


# -- a PE that cannot be copied ---------------------------------------------------------------------------
class Locked(IterativePE):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.seen = 0

    def _process(self, x):
        with self.lock:
            self.seen += 1
        return self.seen


def test_a_pe_that_cannot_be_copied_runs_in_place_with_a_warning(fresh_ids, caplog):
    graph = WorkflowGraph()
    producer, locked = t.TestProducer(), Locked()
    graph.connect(producer, "output", locked, "input")
    with caplog.at_level(logging.WARNING, logger="dispel4py"):
        result = dispel4py.run(graph, {producer: 2})
    assert result is not None and result.items(locked.id) == [1, 2]
    (record,) = [r for r in caplog.records if "cannot be copied" in r.getMessage()]
    assert record.getMessage().startswith(
        "dispel4py.run works on a copy of the graph, but PE Locked1 cannot be copied (TypeError: "
    )
    assert record.getMessage().endswith("PE state changed by this run carries over to the next")
    assert locked.seen == 2  # it ran in place, as the warning says
