"""Items of ~200 kB (numpy arrays): exercises MPI's large-message path."""

import numpy as np

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Arrays(ProducerPE):
    def _process(self, inputs):
        for i in range(20):
            self.write("output", np.full(25_000, i, dtype=np.float64))


class Total(IterativePE):
    def _process(self, array):
        return float(array.sum())


class Collect(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("sums")
        self.sums = []

    def _process(self, x):
        self.sums.append(x)

    def _postprocess(self):
        self.write("sums", sorted(self.sums))


graph = WorkflowGraph()
arrays, total = Arrays(), Total()
graph.connect(arrays, "output", total, "input")
graph.connect(total, "output", Collect(), "input")
