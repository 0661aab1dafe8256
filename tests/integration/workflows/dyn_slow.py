"""A source of ``D4PY_SLOW_ITEMS`` numbers -> a stage sleeping ``D4PY_SLOW_S`` seconds per item
-> a cheap stage -> a 'global' sum that writes the total (and the item count) in postprocess.
"""

import os
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_SLOW_ITEMS", "2"))
SLEEP_S = float(os.environ.get("D4PY_SLOW_S", "3"))


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", i)


class Sleepy(IterativePE):
    def _process(self, x):
        time.sleep(SLEEP_S)
        return x


class Double(IterativePE):
    def _process(self, x):
        return 2 * x


class Total(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.count = self.sum = 0

    def _process(self, x):
        self.count += 1
        self.sum += x

    def _postprocess(self):
        self.write("total", (self.count, self.sum))


graph = WorkflowGraph()
numbers, sleepy, double = Numbers(), Sleepy(), Double()
graph.connect(numbers, "output", sleepy, "input")
graph.connect(sleepy, "output", double, "input")
graph.connect(double, "output", Total(), "input")
