"""parallel_pipeline with explicit partitions (used with -s)."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

prod = t.TestProducer()
cons1 = t.TestOneInOneOut()
cons2 = t.TestOneInOneOut()
cons3 = t.TestOneInOneOut()

graph = WorkflowGraph()
graph.connect(prod, "output", cons1, "input")
graph.connect(cons1, "output", cons2, "input")
graph.connect(cons1, "output", cons3, "input")
graph.partitions = [[prod, cons1, cons2], [cons3]]
