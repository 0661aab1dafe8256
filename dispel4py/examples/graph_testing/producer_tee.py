"""producer -> {c1a, c1b}, c1a -> c2."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

prod = t.TestProducer()
cons1a = t.TestOneInOneOut()
cons1b = t.TestOneInOneOut()
cons2 = t.TestOneInOneOut()

graph = WorkflowGraph()
graph.connect(prod, "output", cons1a, "input")
graph.connect(prod, "output", cons1b, "input")
graph.connect(cons1a, "output", cons2, "input")
