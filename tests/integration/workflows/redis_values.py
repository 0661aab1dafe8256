"""Values that JSON would change or refuse (the original's Redis mappings used JSON):
tuples, numpy scalars and arrays, bytes, sets and an instance of a class of this module."""

import numpy as np

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


def values():
    return [(1, "a"), np.float64(2.5), np.arange(3), b"\x00\xff", {1, 2}, Point(3, 4)]


class Values(ProducerPE):
    def _process(self, inputs):
        for v in values():
            self.write("output", v)


class Same(IterativePE):
    def _process(self, x):
        return x


graph = WorkflowGraph()
graph.connect(Values(), "output", Same(), "input")
