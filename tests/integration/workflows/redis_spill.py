"""A task whose outputs pass the spill limit, and whose first attempt can be frozen mid-way.

Numbers writes ``D4PY_SPILL_ITEMS`` numbers; Big (stateless: shared) writes
``D4PY_SPILL_OUT`` outputs of ``D4PY_SPILL_SIZE`` bytes for each; Tally (global) counts them
and the distinct ones. The first attempt of item 0 stops half-way, after marking
``spilled-<pid>-<item>`` in ``D4PY_SPILL_DIR``, until the file ``go`` exists there (the test
freezes that worker meanwhile); every attempt marks ``start-<pid>-<item>`` when it begins and
``done-<pid>-<item>`` when it has written all.

With ``D4PY_SPILL_ON_TALLY=1`` the attempt that stops is the first one on the worker that
hosts Tally (which marks ``tally-<pid>`` before it takes any task), whatever its item: the
attempts elsewhere wait until it has stopped, so that worker must take one (give as many
items as workers: with more, every other worker may end up waiting in backpressure on Tally
and none is left to take the frozen task back before its worker wakes). Its frozen worker
then also holds the only consumer of Big's outputs.
"""

import os
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

DIR = os.environ.get("D4PY_SPILL_DIR", "")
ITEMS = int(os.environ.get("D4PY_SPILL_ITEMS", "3"))
OUT = int(os.environ.get("D4PY_SPILL_OUT", "50"))
SIZE = int(os.environ.get("D4PY_SPILL_SIZE", "4096"))
ON_TALLY = os.environ.get("D4PY_SPILL_ON_TALLY") == "1"


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


def _wait_for(found) -> None:
    deadline = time.monotonic() + 120
    while not found() and time.monotonic() < deadline:
        time.sleep(0.01)


def _spilled() -> bool:
    return any(name.startswith("spilled-") for name in os.listdir(DIR))


def _stops(x: int) -> bool:
    """Whether this attempt is the one that stops half-way."""
    if not ON_TALLY:
        return x == 0 and _first_attempt(x)
    if not os.path.exists(os.path.join(DIR, f"tally-{os.getpid()}")):
        _wait_for(_spilled)
        return False
    return not _spilled() and _first_attempt(x)


class Big(IterativePE):
    def _process(self, x):
        stop = bool(DIR) and _stops(x)
        if DIR:
            _mark(f"start-{os.getpid()}-{x}")
        for j in range(OUT):
            self.write("output", (x, j, b"." * SIZE))
            if stop and j == OUT // 2:
                _mark(f"spilled-{os.getpid()}-{x}")
                _wait_for(lambda: os.path.exists(os.path.join(DIR, "go")))
        if DIR:
            _mark(f"done-{os.getpid()}-{x}")


class Tally(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("tally")
        self.count = 0
        self.seen = set()

    def _preprocess(self):
        if DIR:
            _mark(f"tally-{os.getpid()}")

    def _process(self, item):
        self.count += 1
        self.seen.add(item[:2])

    def _postprocess(self):
        self.write("tally", (self.count, len(self.seen)))


graph = WorkflowGraph()
numbers, big = Numbers(), Big()
graph.connect(numbers, "output", big, "input")
graph.connect(big, "output", Tally(), "input")
