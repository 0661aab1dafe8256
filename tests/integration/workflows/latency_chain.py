"""Numbers -> Slow (20 ms per item) -> Note, one instance each: Note records when its 30th
item came and Slow when it finished its last, so a test can check that items flow on
during Slow's long drain (60 items in one batch, 1.2 s)."""

import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(60):
            self.write("output", i)


class Slow(IterativePE):
    single = True

    def __init__(self):
        super().__init__()
        self._add_output("last")
        self.last = 0.0

    def _process(self, x):
        time.sleep(0.02)
        self.last = time.time()
        return x

    def _postprocess(self):
        self.write("last", self.last)


class Note(ConsumerPE):
    single = True

    def __init__(self):
        super().__init__()
        self._add_output("thirtieth")
        self.count = 0
        self.thirtieth = None

    def _process(self, x):
        self.count += 1
        if self.count == 30:
            self.thirtieth = time.time()

    def _postprocess(self):
        self.write("thirtieth", self.thirtieth)


graph = WorkflowGraph()
slow = Slow()
graph.connect(Numbers(), "output", slow, "input")
graph.connect(slow, "output", Note(), "input")
