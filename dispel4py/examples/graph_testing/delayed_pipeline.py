"""producer -> pass-through -> a PE sleeping 1 s per item, timed by ProcessTimingPE."""

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.new.monitoring import ProcessTimingPE
from dispel4py.workflow_graph import WorkflowGraph

prod = t.TestProducer()
cons1 = t.TestOneInOneOut()
cons2 = ProcessTimingPE(t.TestDelayOneInOneOut())

graph = WorkflowGraph()
graph.connect(prod, "output", cons1, "input")
graph.connect(cons1, "output", cons2, "input")
