"""A burst, a pause, a trickle: for fleet autoscaling.

Numbers (pinned) writes D4PY_BURST_ITEMS items at once, waits D4PY_PAUSE_S seconds, then
writes D4PY_TRICKLE_ITEMS more, one every D4PY_TRICKLE_S seconds; Slow (shared) sleeps
D4PY_BURST_S per item; its outputs are the results (no pinned consumer: the source's worker
sleeps in the trickle and could not serve one). The burst makes the fleet grow; the pause and
the trickle that follow leave it idle (it must shrink, and not oscillate).
"""

import os
import time

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

BURST = int(os.environ.get("D4PY_BURST_ITEMS", "300"))
TRICKLE = int(os.environ.get("D4PY_TRICKLE_ITEMS", "0"))
TRICKLE_S = float(os.environ.get("D4PY_TRICKLE_S", "0.1"))
SLEEP_S = float(os.environ.get("D4PY_BURST_S", "0.02"))
PAUSE_S = float(os.environ.get("D4PY_PAUSE_S", "0"))


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(BURST):
            self.write("output", i)
        time.sleep(PAUSE_S)
        for i in range(BURST, BURST + TRICKLE):
            time.sleep(TRICKLE_S)
            self.write("output", i)


class Slow(IterativePE):
    def _process(self, x):
        time.sleep(SLEEP_S)
        return x


graph = WorkflowGraph()
graph.connect(Numbers(), "output", Slow(), "input")  # Slow's output: the run's results
