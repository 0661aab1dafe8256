"""Replicated PEs joined by a group-by: with -n 2 each worker sends to the other."""

import os

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(int(os.environ.get("D4PY_ITEMS", "1000"))):
            self.write("output", [i % 97, i])


class Tag(IterativePE):
    def _process(self, pair):
        return pair


class Count(IterativePE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = [0]
        self.seen = {}

    def _process(self, pair):
        self.seen[pair[0]] = self.seen.get(pair[0], 0) + 1
        return [pair[0], self.rank]


class Sum(ConsumerPE):
    def __init__(self):
        super().__init__()
        self._add_output("total")
        self.count = 0

    def _process(self, x):
        self.count += 1

    def _postprocess(self):
        self.write("total", self.count)


graph = WorkflowGraph()
numbers, tag, count = Numbers(), Tag(), Count()
graph.connect(numbers, "output", tag, "input")
graph.connect(tag, "output", count, "input")
graph.connect(count, "output", Sum(), "input")
