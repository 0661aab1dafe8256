"""NumberProducer(k) -> c1 -> {c2, c3}; k is the 4th command-line argument if numeric, else 1."""

import sys

from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph


def _iterations() -> int:
    try:
        return int(sys.argv[4])
    except (IndexError, ValueError):
        return 1


prod = t.NumberProducer(_iterations())
cons1 = t.TestOneInOneOut()
cons2 = t.TestOneInOneOut()
cons3 = t.TestOneInOneOut()

graph = WorkflowGraph()
graph.connect(prod, "output", cons1, "input")
graph.connect(cons1, "output", cons2, "input")
graph.connect(cons1, "output", cons3, "input")
