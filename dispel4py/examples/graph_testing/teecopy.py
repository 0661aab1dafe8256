"""producer -> {c1, c2}: both receive every item."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

prod = t.TestProducer()
cons1 = t.TestOneInOneOut()
cons2 = t.TestOneInOneOut()

graph = WorkflowGraph()
graph.connect(prod, "output", cons1, "input")
graph.connect(prod, "output", cons2, "input")
