"""source (pinned) -> Slow (shared, sleeps D4PY_MARK_S per item) -> Total ('global', pinned),
for the fleet tests. Slow requires the tags in D4PY_MARK_REQUIRES, Total those in
D4PY_MARK_TOTAL_REQUIRES (comma-separated; none by default). Each PE leaves a mark in
D4PY_MARK_DIR naming its process and its parent (``shared-<pid>-<parent pid>`` for every
process that ran a Slow task), so a test sees on which agent the work ran. Total writes
``(count, sum)``: exact counts show that no item was lost or doubled.
"""

import os
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_MARK_ITEMS", "60"))
SLEEP_S = float(os.environ.get("D4PY_MARK_S", "0.01"))
MARKS = os.environ.get("D4PY_MARK_DIR", "")
REQUIRES = {t for t in os.environ.get("D4PY_MARK_REQUIRES", "").split(",") if t}
TOTAL_REQUIRES = {t for t in os.environ.get("D4PY_MARK_TOTAL_REQUIRES", "").split(",") if t}


def mark(kind):
    if MARKS:
        open(os.path.join(MARKS, f"{kind}-{os.getpid()}-{os.getppid()}"), "w").close()


class Numbers(ProducerPE):
    def _process(self, inputs):
        mark("source")
        for i in range(ITEMS):
            self.write("output", i)


class Slow(IterativePE):
    def __init__(self):
        super().__init__()
        self.requires = REQUIRES  # on the object: it travels with the plan to every worker

    def _process(self, x):
        mark("shared")
        time.sleep(SLEEP_S)
        return x


class Total(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.count = self.sum = 0
        self.requires = TOTAL_REQUIRES

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
