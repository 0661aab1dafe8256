"""Two independent producer -> 5 pass-through pipelines in one workflow."""

from dispel4py.core import GenericPE
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph


def add_pipeline(graph: WorkflowGraph) -> None:
    previous: GenericPE = t.TestProducer()
    for _ in range(5):
        cons = t.TestOneInOneOut()
        graph.connect(previous, "output", cons, "input")
        previous = cons


graph = WorkflowGraph()
add_pipeline(graph)
add_pipeline(graph)
