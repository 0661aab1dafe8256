"""Numbers 0..99 -> Picky (shared; raises on 13 and 42) -> Total ('global'): for --on-error dead-letter."""

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(100):
            self.write("output", i)


class Picky(IterativePE):
    def _process(self, x):
        if x in (13, 42):
            raise ValueError(f"I do not like {x}")
        return x


class Total(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.count = self.sum = 0

    def _process(self, x):
        self.count += 1
        self.sum += x

    def _postprocess(self):
        self.write("total", (self.count, self.sum))


graph = WorkflowGraph()
p = Picky()
graph.connect(Numbers(), "output", p, "input")
graph.connect(p, "output", Total(), "input")
