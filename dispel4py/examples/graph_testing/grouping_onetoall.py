"""producer -> a PE with two instances, each receiving every item ('all')."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

prod = t.TestProducer()
cons = t.TestOneInOneOut()
cons.numprocesses = 2
cons.inputconnections["input"]["grouping"] = "all"

graph = WorkflowGraph()
graph.connect(prod, "output", cons, "input")
