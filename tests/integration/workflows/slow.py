"""Items that take 50 ms each: long enough to kill a worker or press Ctrl-C mid-run.

With ``D4PY_MARK_DIR`` set, Slow leaves a file ``slow-<item>`` there per item done (a test
waits for work in progress, and counts what was done after a fault, instead of reading a
clock). With ``D4PY_HOLD_FILE`` set, Slow holds every item it starts once that file exists,
until its process is ended: a run the test has stopped can then only end by the stop, never
by finishing its work.
"""

import os
import time
from pathlib import Path

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

MARKS = os.environ.get("D4PY_MARK_DIR", "")
HOLD = os.environ.get("D4PY_HOLD_FILE", "")
HOLD_S = 600  # longer than any test's hang guard; the test's cleanup kills what is left


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(2000):
            self.write("output", i)


class Slow(IterativePE):
    def _process(self, x):
        if HOLD and os.path.exists(HOLD):
            time.sleep(HOLD_S)
        time.sleep(0.05)
        if MARKS:
            (Path(MARKS) / f"slow-{x}").touch()
        return x


graph = WorkflowGraph()
graph.connect(Numbers(), "output", Slow(), "input")
