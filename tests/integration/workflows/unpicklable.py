"""A source writing items that cannot be pickled (thread locks)."""

import threading

from dispel4py.base import ConsumerPE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Locks(ProducerPE):
    def _process(self, inputs):
        return threading.Lock()


class Sink(ConsumerPE):
    def _process(self, x):
        pass


graph = WorkflowGraph()
graph.connect(Locks(), "output", Sink(), "input")
