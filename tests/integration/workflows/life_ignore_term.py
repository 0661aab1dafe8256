"""Workers that ignore SIGTERM beside a PE that raises: the run must still end at once.

With ``LIFE_HOLD_FILE`` set, Boom makes that file just before it raises, and from then on
Stubborn holds every item it starts until its process is killed: a run that waited for the
stubborn workers to finish (or to heed SIGTERM) would never end.
"""

import os
import signal
import time
from pathlib import Path

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(200):
            self.write("output", i)


HOLD = os.environ.get("LIFE_HOLD_FILE", "")


class Stubborn(IterativePE):
    def preprocess(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _process(self, x):
        if HOLD and os.path.exists(HOLD):
            time.sleep(600)  # only SIGKILL ends it; the test's cleanup kills what is left
        time.sleep(0.05)
        return x


class Boom(IterativePE):
    def _process(self, x):
        if x == 42:
            if HOLD:
                Path(HOLD).touch()
            raise ValueError(f"bad item {x} raised at {time.time()}")
        return x


class Sink(ConsumerPE):
    def _process(self, x):
        pass


graph = WorkflowGraph()
numbers, stubborn, boom = Numbers(), Stubborn(), Boom()
graph.connect(numbers, "output", boom, "input")
graph.connect(numbers, "output", stubborn, "input")
graph.connect(boom, "output", Sink(), "input")
