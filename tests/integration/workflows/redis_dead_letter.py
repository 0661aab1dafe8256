"""Numbers 0..N-1 (pinned) -> Double (shared) -> Picky (shared, raises on some items) ->
Total ('global', pinned): for ``--on-error dead-letter`` under any batch size and load.

Picky raises on the items that ``bad(x)`` picks, from D4PY_DL_SEED with a share of
D4PY_DL_BAD; the test computes the same set. Total writes (count, sum, sum of squares),
so a lost or doubled item shows. Double writes 2x and 2x+1 for each x, so that writers
fill their buffers and help under backpressure (tasks run nested).
"""

import os
import random

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.core import GenericPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_DL_ITEMS", "1000"))
SEED = int(os.environ.get("D4PY_DL_SEED", "0"))
SHARE = float(os.environ.get("D4PY_DL_BAD", "0.01"))


def bad(x):
    return random.Random(SEED * 1_000_003 + x).random() < SHARE


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", i)


class Double(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input")
        self._add_output("output")

    def _process(self, inputs):
        x = inputs["input"]
        self.write("output", 2 * x)
        self.write("output", 2 * x + 1)


class Picky(IterativePE):
    def _process(self, x):
        if bad(x):
            raise ValueError(f"I do not like {x}")
        return x


class Total(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.count = self.sum = self.squares = 0

    def _process(self, x):
        self.count += 1
        self.sum += x
        self.squares += x * x

    def _postprocess(self):
        self.write("total", (self.count, self.sum, self.squares))


graph = WorkflowGraph()
double, picky = Double(), Picky()
graph.connect(Numbers(), "output", double, "input")
graph.connect(double, "output", picky, "input")
graph.connect(picky, "output", Total(), "input")
