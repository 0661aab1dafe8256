"""One source call writing D4PY_ITEMS ints -> +1 -> a sum: memory must stay bounded."""

import os

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        write = self.write
        for i in range(int(os.environ.get("D4PY_ITEMS", "1000"))):
            write("output", i)


class Increment(IterativePE):
    def _process(self, x):
        return x + 1


class Sum(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.total = 0

    def _process(self, x):
        self.total += x

    def _postprocess(self):
        self.write("total", self.total)


graph = WorkflowGraph()
numbers, increment = Numbers(), Increment()
graph.connect(numbers, "output", increment, "input")
graph.connect(increment, "output", Sum(), "input")
