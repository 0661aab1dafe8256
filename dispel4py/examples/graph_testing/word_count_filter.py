"""Random words -> random filter (5 instances) -> word counter (3 instances)."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

words = t.RandomWordProducer()
filt = t.RandomFilter()
filt.numprocesses = 5
count = t.WordCounter()
count.numprocesses = 3

graph = WorkflowGraph()
graph.connect(words, "output", filt, "input")
graph.connect(filt, "output", count, "input")
