"""Tutorial workflow: numbers -> squares -> a running total.

dispel4py simple examples/tutorial/squares.py -d '{"Numbers": [{"count": 5}]}'
"""

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    """Writes 1..count (count from the input dict, default 10)."""

    def _process(self, inputs):
        for n in range(1, inputs.get("count", 10) + 1):
            self.write("output", n)


class Square(IterativePE):
    def _process(self, n):
        return n * n


class Total(ConsumerPE):
    """Adds up what it receives and writes the sum at the end of the stream."""

    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"  # one instance sees every item
        self._add_output("total")
        self.total = 0

    def _process(self, n):
        self.total += n

    def _postprocess(self):
        self.log(f"total is {self.total}")
        self.write("total", self.total)


graph = WorkflowGraph()
numbers, square, total = Numbers(), Square(), Total()
graph.connect(numbers, "output", square, "input")
graph.connect(square, "output", total, "input")
