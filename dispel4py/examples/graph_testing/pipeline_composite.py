"""TestProducer feeding a composite chain: x -> (4 (x + 2)) / 2 - 1 = 2x + 3."""

from dispel4py.base import create_iterative_chain
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph


def addTwo(data):
    return 2 + data


def multiplyByFour(data):
    return 4 * data


def divideByTwo(data):
    return data / 2


def subtract(data, n):
    return data - n


functions = [addTwo, multiplyByFour, divideByTwo, (subtract, {"n": 1})]
composite = create_iterative_chain(functions)
producer = t.TestProducer()

graph = WorkflowGraph()
graph.connect(producer, "output", composite, "input")
