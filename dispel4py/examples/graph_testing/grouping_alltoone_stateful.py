"""grouping_alltoone with a stateful producer (for the Redis hybrid mapping)."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

prod = t.TestProducer()
prod.stateful = "nature"
cons1 = t.TestOneInOneOut()
cons2 = t.TestOneInOneOut()
cons1.numprocesses = 5
cons2.numprocesses = 5
cons2.inputconnections["input"]["grouping"] = "global"

graph = WorkflowGraph()
graph.connect(prod, "output", cons1, "input")
graph.connect(cons1, "output", cons2, "input")
