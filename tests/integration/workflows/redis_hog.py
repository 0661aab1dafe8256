"""Numbers 0..N-1 (pinned) -> Hog (shared) -> Total ('global', pinned).

Hog holds the GIL in one C call for D4PY_HOG_S seconds per item (``usleep`` through
``ctypes.PyDLL``, which, unlike ``ctypes.CDLL``, keeps the GIL: what ``sum(range(10**9))``
or ``sorted`` of a big list do, for a time that does not depend on the machine's speed),
then leaves a mark ``hog-<item>-<pid>-<n>`` in D4PY_MARK_DIR: one mark per run of an item,
so a task taken from its live worker and run twice shows. With D4PY_HOG_SPIN=N it runs
``sum(range(N))`` instead: a C loop that a signal does not interrupt.
"""

import ctypes
import os

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_HOG_ITEMS", "4"))
HOG_S = float(os.environ.get("D4PY_HOG_S", "2.5"))
MARKS = os.environ.get("D4PY_MARK_DIR", "")
SPIN = int(os.environ.get("D4PY_HOG_SPIN", "0"))  # instead: sum(range(SPIN)), GIL held


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", i)


class Hog(IterativePE):
    def _process(self, x):
        if MARKS:
            open(os.path.join(MARKS, f"start-{x}-{os.getpid()}-{os.urandom(4).hex()}"), "w").close()
        if SPIN:  # a C loop that no signal interrupts (usleep returns early on one)
            sum(range(SPIN))
        else:
            ctypes.PyDLL(None).usleep(int(HOG_S * 1_000_000))  # the GIL is held all along
        if MARKS:
            open(os.path.join(MARKS, f"hog-{x}-{os.getpid()}-{os.urandom(4).hex()}"), "w").close()
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
hog = Hog()
graph.connect(Numbers(), "output", hog, "input")
graph.connect(hog, "output", Total(), "input")
