"""A source of ``D4PY_RESULTS_ITEMS`` numbers -> Slow (shared, sleeps ``D4PY_RESULTS_S`` per
item), whose output is the run's result: every result travels in the reports stream, in the
commit of the shared task that made it."""

import os
import time

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_RESULTS_ITEMS", "40"))
SLEEP_S = float(os.environ.get("D4PY_RESULTS_S", "0.02"))


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", i)


class Slow(IterativePE):
    def _process(self, x):
        time.sleep(SLEEP_S)
        return x


graph = WorkflowGraph()
graph.connect(Numbers(), "output", Slow(), "input")
