"""TestProducer(2): output0 -> c1 -> input0, output1 -> writer -> input1 of TestTwoInOneOut."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

graph = WorkflowGraph()
prod = t.TestProducer(2)
cons1 = t.TestOneInOneOut()
cons2 = t.TestOneInOneOutWriter()
last = t.TestTwoInOneOut()
graph.connect(prod, "output0", cons1, "input")
graph.connect(prod, "output1", cons2, "input")
graph.connect(cons1, "output", last, "input0")
graph.connect(cons2, "output", last, "input1")
