"""A workflow for the provenance tests: 12 items through a PE of 3 instances, each writing
metadata JSON cannot write for every item ``i % 4 == 3`` (3 records in all, made in
different processes on a process mapping)."""

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(12):
            self.write("output", i)


class Tag(IterativePE):
    def __init__(self):
        IterativePE.__init__(self)
        self.numprocesses = 3

    def _process(self, item):
        self.write("output", item, metadata={"i": item, "bad": object() if item % 4 == 3 else 0})


graph = WorkflowGraph()
graph.connect(Numbers(), "output", Tag(), "input")
