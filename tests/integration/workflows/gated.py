"""A run that stays in progress until the test lets it end: ``D4PY_GATE_ITEMS`` numbers ->
a stage that waits for the file ``D4PY_GATE`` to exist before passing each item on -> a
'global' sum. So a test can look at a run in progress without betting on a clock."""

import os
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_GATE_ITEMS", "20"))
GATE = os.environ.get("D4PY_GATE", "")
GIVE_UP_S = 120.0  # a forgotten gate must not leave a run behind for ever


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", i)


class Gate(IterativePE):
    def _process(self, x):
        deadline = time.monotonic() + GIVE_UP_S
        while GATE and not os.path.exists(GATE) and time.monotonic() < deadline:
            time.sleep(0.02)
        return x


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
numbers, gate = Numbers(), Gate()
graph.connect(numbers, "output", gate, "input")
graph.connect(gate, "output", Total(), "input")
