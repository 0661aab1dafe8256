"""source (pinned) -> Slow (shared) -> Total ('global', pinned), with a gate.

Numbers writes ``D4PY_GATE_ITEMS`` numbers; Slow passes each on, but only once the file
``open`` exists in ``D4PY_GATE_DIR`` (so a test can keep the run's workers busy, with
tasks queued, while it acts as a worker itself); Total writes ``(count, sum)`` of what it
got: exact counts show that no item was lost or doubled.
"""

import os
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_GATE_ITEMS", "20"))
GATE = os.path.join(os.environ.get("D4PY_GATE_DIR", ""), "open")


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", i)


class Slow(IterativePE):
    def _process(self, x):
        deadline = time.monotonic() + 120
        while not os.path.exists(GATE) and time.monotonic() < deadline:
            time.sleep(0.01)
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
slow = Slow()
graph.connect(Numbers(), "output", slow, "input")
graph.connect(slow, "output", Total(), "input")
