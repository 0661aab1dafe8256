"""The original's library entry points, called as its own tests and user scripts call them."""

from __future__ import annotations

import argparse
import queue

import pytest

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.new import multi_process, simple_process
from dispel4py.new.processor import STATUS_TERMINATED
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)


def tee():
    graph = WorkflowGraph()
    prod, left, right = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(prod, "output", left, "input")
    graph.connect(prod, "output", right, "input")
    return graph, prod


def drain(results: queue.Queue) -> list:
    items = []
    while True:
        item = results.get(timeout=5)
        if item == STATUS_TERMINATED:
            return items
        items.append(item)


def test_multi_process_with_the_namespace_class_as_args(fresh_ids):
    """The original's multi_process_test set attributes on the argparse.Namespace class."""

    class Args(argparse.Namespace):
        num = 3
        simple = False

    graph, prod = tee()
    assert multi_process.process(graph, {prod: 4}, Args) is None  # no args.results: nothing returned


def test_multi_process_results_queue_shape(fresh_ids):
    graph, prod = tee()
    args = argparse.Namespace(num=3, simple=False, results=True)
    results = multi_process.process(graph, {prod: 3}, args)
    assert isinstance(results, queue.Queue)
    items = drain(results)
    assert sorted(items) == sorted(
        (pe, "output", i) for pe in ("TestOneInOneOut1", "TestOneInOneOut2") for i in (1, 2, 3)
    )


def test_simple_process_prints_the_outputs(fresh_ids, capsys):
    graph, prod = tee()
    simple_process.process(graph, {prod: 2})
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Outputs: {'TestOneInOneOut1': {'output': [1, 2]}, 'TestOneInOneOut2': {'output': [1, 2]}}"
    )


def test_process_and_return_with_resultmappings(fresh_ids):
    graph, prod = tee()
    assert simple_process.process_and_return(graph, {prod: 2}, {"TestOneInOneOut2": ["output"]}) == {
        "TestOneInOneOut2": {"output": [1, 2]}
    }
