"""Numbers -> Slow (20 ms per item) -> Note, one instance each: items must flow on to Note
during Slow's long drain (60 items in one batch), not only once Slow is done.

Note makes the file ``thirtieth`` in ``LATENCY_DIR`` when its 30th item comes. Slow, before
its item 45 (15 items before its end), waits for that file: if items moved on only after
the drain, the file could not come while Slow waits, and Slow's ``flowed`` output says so
once the hang guard (``GUARD_S``) is over. No clock decides: the order of the two events does.
"""

import os
import time
from pathlib import Path

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

GATE = Path(os.environ["LATENCY_DIR"]) / "thirtieth"
WAIT_BEFORE = 45
GUARD_S = 30.0


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(60):
            self.write("output", i)


class Slow(IterativePE):
    single = True

    def __init__(self):
        super().__init__()
        self._add_output("flowed")
        self.flowed = None

    def _process(self, x):
        if x == WAIT_BEFORE:
            deadline = time.monotonic() + GUARD_S
            while not GATE.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
            self.flowed = GATE.exists()
        time.sleep(0.02)
        return x

    def _postprocess(self):
        self.write("flowed", self.flowed)


class Note(ConsumerPE):
    single = True

    def __init__(self):
        super().__init__()
        self.count = 0

    def _process(self, x):
        self.count += 1
        if self.count == 30:
            GATE.touch()


graph = WorkflowGraph()
slow = Slow()
graph.connect(Numbers(), "output", slow, "input")
graph.connect(slow, "output", Note(), "input")
