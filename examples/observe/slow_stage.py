"""A pipeline with one slow stage, to watch a run: Numbers -> Lookup (50 ms per item) -> Scale -> Total.

    dispel4py multi examples/observe/slow_stage.py -n 8 --stats
    dispel4py multi examples/observe/slow_stage.py -n 8 -d '{"Numbers": [{"count": 400}]}'

``Lookup`` waits (like a query to a remote service), so its time is set by how many
instances run it, not by the cores: the live table shows it busy while the others idle,
and ``--stats`` ends with a line naming it.
"""

import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    """Writes 0..count-1 (count from the input dict, default 100)."""

    def _process(self, inputs):
        for n in range(inputs.get("count", 100)):
            self.write("output", n)


class Lookup(IterativePE):
    """Waits 50 ms per item, as a remote query would."""

    def _process(self, n):
        time.sleep(0.05)
        return n


class Scale(IterativePE):
    def _process(self, n):
        return 10 * n


class Total(ConsumerPE):
    """Adds up what it receives; writes the sum at the end of the stream."""

    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.total = 0

    def _process(self, n):
        self.total += n

    def _postprocess(self):
        self.write("total", self.total)


graph = WorkflowGraph()
numbers, lookup, scale, total = Numbers(), Lookup(), Scale(), Total()
graph.connect(numbers, "output", lookup, "input")
graph.connect(lookup, "output", scale, "input")
graph.connect(scale, "output", total, "input")
