"""A slow PE beside one that raises on item 42: the run must still end at once.

``D4PY_BOOM_ITEMS`` (default 200) numbers go to Slow (0.2 s each) and to the cheap Boom.
With ``D4PY_MARK_DIR`` set, Slow leaves a file there per item done, and Boom's error says
how many were done when it raised: tests count Slow's items instead of reading a clock.
With ``D4PY_HOLD_FILE`` set too, Boom makes that file before it counts, and Slow holds every
item it starts once the file exists, until its process is ended: the run can then end only
because of the error, and at most one item per process is done after the count.
"""

import os
import time
from pathlib import Path

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_BOOM_ITEMS", "200"))
MARKS = os.environ.get("D4PY_MARK_DIR", "")
HOLD = os.environ.get("D4PY_HOLD_FILE", "")


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", i)


class Slow(IterativePE):
    def _process(self, x):
        if HOLD and os.path.exists(HOLD):
            time.sleep(600)  # held until the run ends it (a test's cleanup kills what is left)
        time.sleep(0.2)
        if MARKS:
            (Path(MARKS) / f"slow-{x}").touch()
        return x


class Boom(IterativePE):
    def _process(self, x):
        if x == 42:
            if HOLD:
                Path(HOLD).touch()
            done = len(os.listdir(MARKS)) if MARKS else -1
            raise ValueError(f"bad item {x} raised at {time.time()} with {done} Slow items done")
        return x


class Sink(ConsumerPE):
    def _process(self, x):
        pass


graph = WorkflowGraph()
numbers, slow, boom = Numbers(), Slow(), Boom()
graph.connect(numbers, "output", boom, "input")
graph.connect(numbers, "output", slow, "input")
graph.connect(boom, "output", Sink(), "input")
