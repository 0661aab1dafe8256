"""Many quick items (3000 through two PEs): records come fast, for the writer process tests."""

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(3000):
            self.write("output", i)


class Plus(IterativePE):
    def _process(self, x):
        return x + 1


graph = WorkflowGraph()
graph.connect(Numbers(), "output", Plus(), "input")
