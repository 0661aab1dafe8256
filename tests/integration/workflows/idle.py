"""Four items that each sleep 0.5 s on one instance: every other rank is idle."""

import time

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(4):
            self.write("output", i)


class Sleepy(IterativePE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"

    def _process(self, x):
        time.sleep(0.5)
        return x


graph = WorkflowGraph()
graph.connect(Numbers(), "output", Sleepy(), "input")
