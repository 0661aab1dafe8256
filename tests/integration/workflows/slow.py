"""Items that take 50 ms each: long enough to kill a worker or press Ctrl-C mid-run."""

import time

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(2000):
            self.write("output", i)


class Slow(IterativePE):
    def _process(self, x):
        time.sleep(0.05)
        return x


graph = WorkflowGraph()
graph.connect(Numbers(), "output", Slow(), "input")
