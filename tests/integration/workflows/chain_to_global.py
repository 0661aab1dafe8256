"""A source, six pass-through PEs and one 'global' sink: hung with small batches (credit deadlock).

``D4PY_CHAIN_ITEMS`` items (default 20 000); the sink sleeps ``D4PY_CHAIN_SLEEP_US``
microseconds per item (default 0).
"""

import os
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_CHAIN_ITEMS", "20000"))
SLEEP_S = int(os.environ.get("D4PY_CHAIN_SLEEP_US", "0")) / 1e6


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", i)


class Pass(IterativePE):
    def _process(self, x):
        return x


class Total(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.count = self.sum = 0

    def _process(self, x):
        if SLEEP_S:
            time.sleep(SLEEP_S)
        self.count += 1
        self.sum += x

    def _postprocess(self):
        self.write("total", (self.count, self.sum))


graph = WorkflowGraph()
previous = Numbers()
for _ in range(6):
    step = Pass()
    graph.connect(previous, "output", step, "input")
    previous = step
graph.connect(previous, "output", Total(), "input")
