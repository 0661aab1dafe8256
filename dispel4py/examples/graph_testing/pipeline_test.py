"""A producer followed by a chain of five pass-through PEs.

dispel4py simple dispel4py.examples.graph_testing.pipeline_test -i 5
Outputs: {'TestOneInOneOut5': {'output': [1, 2, 3, 4, 5]}}
"""

from dispel4py.core import GenericPE
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph


def testPipeline(graph: WorkflowGraph) -> WorkflowGraph:
    prod = t.TestProducer()
    previous: GenericPE = prod
    for _ in range(5):
        cons = t.TestOneInOneOut()
        graph.connect(previous, "output", cons, "input")
        previous = cons
    return graph


graph = testPipeline(WorkflowGraph())
