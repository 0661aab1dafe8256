"""Random words -> a word counter with 3 instances, grouped by word."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

words = t.RandomWordProducer()
count = t.WordCounter()
count.numprocesses = 3

graph = WorkflowGraph()
graph.connect(words, "output", count, "input")
