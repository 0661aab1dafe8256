"""A workflow for the provenance tests: every kind of lineage, deterministic on every mapping.

Numbers -> Double (stateless) -> Counter (grouped by 2x % 3: a stateful PE emitting a running
count per item) -> Total (one instance: a plain PE summing in postprocess), and Double ->
Window (SlideFlow over 3 inputs) and Double -> Pairs (AccumulateFlow: one output per 2
inputs, with update_prov_state). Sources and the windowed outputs say their values in their
metadata (write(..., metadata=...)), so a test can check lineage against the values.
"""

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.core import GenericPE
from dispel4py.provenance import AccumulateFlow, SlideFlow
from dispel4py.workflow_graph import WorkflowGraph

N = 12


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(N):
            self.write("output", i, metadata={"i": i})


class Double(IterativePE):
    def _process(self, x):
        return [(2 * x) % 3, 2 * x]  # [group key, value]


class Counter(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.counts = {}

    def _process(self, inputs):
        key, x = inputs["input"]
        self.counts[key] = self.counts.get(key, 0) + 1
        self.write("output", [key, self.counts[key], x])


class Total(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.total = 0

    def _process(self, inputs):
        self.total += inputs["input"][2]

    def _postprocess(self):
        self.write("output", self.total)


class Window(SlideFlow):
    def __init__(self):
        SlideFlow.__init__(self)
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.wlength = 3
        self.seen = []

    def _process(self, inputs):
        self.seen = [*self.seen, inputs["input"][1]][-3:]
        if len(self.seen) == 3:
            self.write("output", sum(self.seen), metadata={"sum": sum(self.seen)})


class Pairs(AccumulateFlow):
    def __init__(self):
        AccumulateFlow.__init__(self)
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.held = []

    def _process(self, inputs):
        self.held.append(inputs["input"][1])
        self.update_prov_state("held", self.held, metadata={"n": len(self.held)})
        if len(self.held) == 2:
            self.write("output", sorted(self.held), metadata={"pair": sorted(self.held)})
            self.held = []
            self.discardState()


graph = WorkflowGraph()
numbers, double, counter, total = Numbers(), Double(), Counter(), Total()
graph.connect(numbers, "output", double, "input")
graph.connect(double, "output", counter, "input")
graph.connect(counter, "output", total, "input")
graph.connect(double, "output", Window(), "input")
graph.connect(double, "output", Pairs(), "input")
