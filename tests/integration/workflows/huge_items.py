"""150 items of 20 MB (a 3 GB stream): memory must stay bounded by bytes, not by items.

``D4PY_HUGE_ITEMS`` / ``D4PY_HUGE_MB`` change the count and size.
"""

import os

import numpy as np

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_HUGE_ITEMS", "150"))
MEGABYTES = int(os.environ.get("D4PY_HUGE_MB", "20"))


class Blocks(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", np.full(MEGABYTES << 17, i, dtype=np.float64))  # MEGABYTES MB


class Halve(IterativePE):
    def _process(self, block):
        return block[: len(block) // 2]


class Tally(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.count = 0
        self.first = 0.0

    def _process(self, block):
        self.count += 1
        self.first += float(block[0])

    def _postprocess(self):
        self.write("total", (self.count, self.first))


graph = WorkflowGraph()
blocks, halve = Blocks(), Halve()
graph.connect(blocks, "output", halve, "input")
graph.connect(halve, "output", Tally(), "input")
