"""source (pinned) -> Slow (shared, sleeps D4PY_MARK_S per item) -> Total ('global', pinned).

Each PE leaves a mark in D4PY_MARK_DIR naming its process: ``source-<pid>``, ``total-<pid>``
(pinned instances) and ``shared-<pid>`` (every process that ran a Slow task), so a test can
kill a worker that hosts only shared work, or the one hosting Total. Total writes
``(count, sum)`` of what it got: exact counts show that no item was lost or doubled.
With ``D4PY_MARK_GATE`` (a path), Slow holds every item until that file exists, so that a
test decides when the run may end instead of making it long enough.
"""

import os
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_MARK_ITEMS", "200"))
SLEEP_S = float(os.environ.get("D4PY_MARK_S", "0.02"))
MARKS = os.environ.get("D4PY_MARK_DIR", "")
GATE = os.environ.get("D4PY_MARK_GATE", "")


def mark(kind):
    if MARKS:
        open(os.path.join(MARKS, f"{kind}-{os.getpid()}"), "w").close()


class Numbers(ProducerPE):
    def _process(self, inputs):
        mark("source")
        for i in range(ITEMS):
            self.write("output", i)


class Slow(IterativePE):
    def _process(self, x):
        mark("shared")
        while GATE and not os.path.exists(GATE):
            time.sleep(0.01)
        time.sleep(SLEEP_S)
        return x


class Total(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.count = self.sum = 0

    def _preprocess(self):
        mark("total")

    def _process(self, x):
        self.count += 1
        self.sum += x

    def _postprocess(self):
        self.write("total", (self.count, self.sum))


graph = WorkflowGraph()
slow = Slow()
graph.connect(Numbers(), "output", slow, "input")
graph.connect(slow, "output", Total(), "input")
