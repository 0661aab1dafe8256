"""Workers that ignore SIGTERM beside a PE that raises: the run must still end at once."""

import signal
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(200):
            self.write("output", i)


class Stubborn(IterativePE):
    def preprocess(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _process(self, x):
        time.sleep(0.05)
        return x


class Boom(IterativePE):
    def _process(self, x):
        if x == 42:
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
