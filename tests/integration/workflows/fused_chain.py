"""``D4PY_FUSED_ITEMS`` numbers -> a stage waiting ``D4PY_FUSED_WAIT_S`` (10 ms) per item ->
a cheap ``2 * x`` -> a cheap shared tally (each copy counts and sums what it saw, and writes
``(count, sum)`` in postprocess) and a PE that appends to its input list (it must get its
own copy)."""

import os
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_FUSED_ITEMS", "80"))
WAIT_S = float(os.environ.get("D4PY_FUSED_WAIT_S", "0.01"))


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", [i])


class Waits(IterativePE):
    def _process(self, x):
        time.sleep(WAIT_S)
        return x


class Double(IterativePE):
    def _process(self, x):
        out = [2 * x[0]]
        x.append("seen by Double")  # a careless PE: mutates its input
        return out


class Tally(ConsumerPE):
    def __init__(self):
        super().__init__()
        self._add_output("total")
        self.count = self.sum = 0

    def _process(self, x):
        self.count += 1
        self.sum += x[0]

    def _postprocess(self):
        self.write("total", (self.count, self.sum))


class Length(IterativePE):
    def _process(self, x):
        return len(x)


graph = WorkflowGraph()
numbers, waits, double = Numbers(), Waits(), Double()
graph.connect(numbers, "output", waits, "input")
graph.connect(waits, "output", double, "input")
graph.connect(waits, "output", Length(), "input")
graph.connect(double, "output", Tally(), "input")
