"""``dispel4py.new.aggregate``: the original's aggregates and ``parallel_*`` composites, working
on every mapping (spec §7.3; the original's bugs B24-B26 fixed)."""

from __future__ import annotations

import ast
import math

import pytest

import dispel4py
from dispel4py.base import ProducerPE
from dispel4py.new import aggregate
from dispel4py.new.aggregate import (
    AggregatePE,
    ContinuousReducePE,
    CountPE,
    MaxPE,
    MinPE,
    SumPE,
    parallel_avg,
    parallel_count,
    parallel_max,
    parallel_min,
    parallel_std_dev,
    parallel_sum,
)
from dispel4py.new.simple_process import process_and_return
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)

MAPPINGS = [("simple", {}), ("multi", {"num": 5}), ("dyn_multi", {"num": 3})]
N = 1000


class Rows(ProducerPE):
    """Writes [i, -i, 2i] for i in 0..count-1."""

    def __init__(self, count=N):
        super().__init__()
        self.count = count

    def _process(self, inputs):
        for i in range(self.count):
            self.write("output", [i, -i, 2 * i])


def run_composite(composite, mapping="simple", options=None, count=N):
    graph = WorkflowGraph()
    graph.connect(Rows(count), "output", composite, "input")
    result = dispel4py.run(graph, mapping=mapping, **(options or {}))
    assert result is not None
    ((items,),) = [list(outputs.values()) for outputs in result.outputs.values()]
    return items


def test_all_names_exist():
    for name in aggregate.__all__:
        assert hasattr(aggregate, name), name


@pytest.mark.parametrize(("mapping", "options"), MAPPINGS, ids=[m for m, _ in MAPPINGS])
def test_parallel_aggregates_on_every_mapping(mapping, options):
    assert run_composite(parallel_sum(), mapping, options) == [[N * (N - 1) // 2]]
    assert run_composite(parallel_count(), mapping, options) == [[N]]
    assert run_composite(parallel_min([1]), mapping, options) == [[-(N - 1)]]  # below 0: starts at the first
    assert run_composite(parallel_max([1]), mapping, options) == [[0]]
    assert run_composite(parallel_avg(2), mapping, options) == [[float(N - 1), N, N * (N - 1)]]
    ((std, count, total, squares),) = run_composite(parallel_std_dev(0), mapping, options)
    assert (count, total, squares) == (N, N * (N - 1) // 2, sum(i * i for i in range(N)))
    assert std == pytest.approx(288.8194360957494)


def test_indexes_other_than_the_first_ones():
    """B25: indexes [2, 0] give [sum of column 2, sum of column 0]."""
    assert run_composite(parallel_sum([2, 0]), "multi", {"num": 4}) == [[N * (N - 1), N * (N - 1) // 2]]
    assert run_composite(parallel_min([2, 1])) == [[0, -(N - 1)]]


def test_average_uses_its_index():
    """B24: the original always averaged index 0."""
    assert run_composite(parallel_avg(1), count=4) == [[-1.5, 4, -6]]


def test_instances_that_see_no_item_do_not_break_the_result():
    """Two items over many partial instances: no division by zero, no None in a minimum."""
    options = {"num": 8}
    assert run_composite(parallel_avg(0), "multi", options, count=2) == [[0.5, 2, 1]]
    assert run_composite(parallel_min([0]), "multi", options, count=2) == [[0]]
    assert run_composite(parallel_count(), "multi", options, count=2) == [[2]]


def test_nothing_to_aggregate():
    assert run_composite(parallel_sum(), count=0) == [[0]]  # the sum and count of nothing are 0
    assert run_composite(parallel_count(), count=0) == [[0]]
    graph = WorkflowGraph()
    graph.connect(Rows(0), "output", parallel_avg(), "input")
    graph.connect(Rows(0), "output", parallel_max(), "input")
    result = dispel4py.run(graph)
    assert result is not None and result.outputs == {}  # no average or maximum of nothing


def test_std_dev_of_one_value_is_nan():
    ((std, count, total, squares),) = run_composite(parallel_std_dev(2), count=2)
    assert (std, count, total, squares) == (pytest.approx(math.sqrt(2)), 2, 2, 4)
    ((std, *rest),) = run_composite(parallel_std_dev(0), count=1)
    assert math.isnan(std) and rest == [1, 0, 0]


def test_count_reduce_is_named_as_in_the_original(fresh_ids):
    composite = parallel_count()
    names = sorted(node.get_contained_object().name for node in composite.nodes)
    assert names == ["CountPE", "CountReduce"]


# -- the PEs on their own, as the original's tests used them ------------------------------------------
def test_single_aggregates_with_the_original_api(fresh_ids):
    graph = WorkflowGraph()
    rows = Rows(10)
    pes = [CountPE(), SumPE([0, 2]), MinPE([1]), MaxPE([2])]
    for pe in pes:
        graph.connect(rows, "output", pe, "input")
    results = process_and_return(graph, {rows: 1})
    assert [results[pe.id]["output"] for pe in pes] == [[[10]], [[45, 90]], [[-9]], [[18]]]


class RunningSum(ContinuousReducePE):
    def _process(self, data):
        for position, index in enumerate(self.indexes):
            self.value[position] += data[index]


def test_continuous_reduce_writes_after_every_item(fresh_ids):
    graph = WorkflowGraph()
    rows, running = Rows(4), RunningSum([0])
    graph.connect(rows, "output", running, "input")
    assert process_and_return(graph, {rows: 1}) == {running.id: {"output": [[0], [1], [3], [6]]}}


class Product(AggregatePE):
    """A user aggregate in the original's style: _process gets the inputs dict."""

    def __init__(self):
        super().__init__([0])
        self.value = [1]

    def _process(self, inputs):
        self.value[0] *= inputs[self.INPUT_NAME][0] + 1


def test_user_subclass_of_aggregate_pe(fresh_ids):
    graph = WorkflowGraph()
    rows, product = Rows(5), Product()
    graph.connect(rows, "output", product, "input")
    assert process_and_return(graph, {rows: 1}) == {product.id: {"output": [[120]]}}


# -- from the command line ------------------------------------------------------------------------------
WORKFLOW = """
    from dispel4py.base import ProducerPE
    from dispel4py.new.aggregate import parallel_avg, parallel_sum
    from dispel4py.workflow_graph import WorkflowGraph


    class Numbers(ProducerPE):
        def _process(self, inputs):
            for i in range(100):
                self.write("output", [i])


    graph = WorkflowGraph()
    numbers = Numbers()
    graph.connect(numbers, "output", parallel_sum(), "input")
    graph.connect(numbers, "output", parallel_avg(), "input")
"""


@pytest.mark.parametrize("mapping", [("simple",), ("multi", "-n", "6"), ("zmq_multi", "-n", "3")])
def test_composites_from_the_cli(run_cli, write_workflow, mapping):
    path = write_workflow("aggregates", WORKFLOW)
    done = run_cli(*mapping, path, "-q")
    assert done.returncode == 0, done.stderr
    outputs = ast.literal_eval(done.stdout.removeprefix("Outputs: "))
    expected = [{"output": [[4950]]}, {"output": [[49.5, 100, 4950]]}]
    assert sorted(outputs.values(), key=str) == sorted(expected, key=str)
