"""grouping_onetoall with a stateful producer (for the Redis hybrid mapping)."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

prod = t.TestProducer()
prod.stateful = "nature"
cons = t.TestOneInOneOut()
cons.numprocesses = 2
cons.inputconnections["input"]["grouping"] = "all"

graph = WorkflowGraph()
graph.connect(prod, "output", cons, "input")
