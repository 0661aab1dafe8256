"""A slow PE beside one that raises on item 42: the run must still end at once."""

import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(200):
            self.write("output", i)


class Slow(IterativePE):
    def _process(self, x):
        time.sleep(0.2)
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
numbers, slow, boom = Numbers(), Slow(), Boom()
graph.connect(numbers, "output", boom, "input")
graph.connect(numbers, "output", slow, "input")
graph.connect(boom, "output", Sink(), "input")
