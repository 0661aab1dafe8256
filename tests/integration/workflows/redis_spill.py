"""A task whose outputs pass the spill limit, and whose first attempt can be frozen mid-way.

Numbers writes ``D4PY_SPILL_ITEMS`` numbers; Big (stateless: shared) writes
``D4PY_SPILL_OUT`` outputs of ``D4PY_SPILL_SIZE`` bytes for each; Tally (global) counts them
and the distinct ones. The first attempt of item 0 stops half-way, after marking
``spilled-<pid>`` in ``D4PY_SPILL_DIR``, until the file ``go`` exists there (the test freezes
that worker meanwhile); every attempt marks ``done-<pid>-<item>`` when it has written all.
"""

import os
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

DIR = os.environ.get("D4PY_SPILL_DIR", "")
ITEMS = int(os.environ.get("D4PY_SPILL_ITEMS", "3"))
OUT = int(os.environ.get("D4PY_SPILL_OUT", "50"))
SIZE = int(os.environ.get("D4PY_SPILL_SIZE", "4096"))


def _mark(name: str) -> None:
    with open(os.path.join(DIR, name), "w"):
        pass


def _first_attempt(x: int) -> bool:
    try:
        os.close(os.open(os.path.join(DIR, f"attempt-{x}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", i)


class Big(IterativePE):
    def _process(self, x):
        stop = bool(DIR) and x == 0 and _first_attempt(x)
        for j in range(OUT):
            self.write("output", (x, j, b"." * SIZE))
            if stop and j == OUT // 2:
                _mark(f"spilled-{os.getpid()}")
                deadline = time.monotonic() + 120
                while not os.path.exists(os.path.join(DIR, "go")) and time.monotonic() < deadline:
                    time.sleep(0.01)
        if DIR:
            _mark(f"done-{os.getpid()}-{x}")


class Tally(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("tally")
        self.count = 0
        self.seen = set()

    def _process(self, item):
        self.count += 1
        self.seen.add(item[:2])

    def _postprocess(self):
        self.write("tally", (self.count, len(self.seen)))


graph = WorkflowGraph()
numbers, big = Numbers(), Big()
graph.connect(numbers, "output", big, "input")
graph.connect(big, "output", Tally(), "input")
