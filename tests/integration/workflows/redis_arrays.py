"""Large items on the Redis mappings (payloads through shared memory, mappings/redis/payloads.py):
``D4PY_ARRAYS`` numpy arrays of ``D4PY_ARRAY_BYTES`` -> Hold (shared: passes each array on as it
came, with its sum) -> a 'global' Sink that checks every array and counts them.

Knobs for the tests, so that they look at a run in progress without betting on a clock:
* ``D4PY_GATE``: Hold waits until that file exists (only processes started with it: a
  worker of "another host" started without it runs at once);
* ``D4PY_STALL_WORKER``: the local worker process of that name (``dispel4py-worker-2``)
  writes its pid to ``D4PY_STALLED`` and stalls on its first item, holding its task (the
  other workers' Hold waits until then, so that it surely gets one);
* ``D4PY_FAIL_VALUE``: Hold raises on the array of that value, every time.
"""

import os
import time

import numpy as np

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

ITEMS = int(os.environ.get("D4PY_ARRAYS", "40"))
SIZE = int(os.environ.get("D4PY_ARRAY_BYTES", str(1 << 20))) // 8
GIVE_UP_S = 120.0  # a forgotten gate must not leave a run behind for ever


class Arrays(ProducerPE):
    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("output", np.full(SIZE, float(i)))


class Hold(IterativePE):
    stalled = False

    def _process(self, array):
        gate = os.environ.get("D4PY_GATE", "")
        deadline = time.monotonic() + GIVE_UP_S
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stall_once()
        if float(array[0]) == float(os.environ.get("D4PY_FAIL_VALUE", "-1")):
            raise ValueError(f"array {array[0]} fails on purpose")
        return float(array.sum()), array  # passed on as it came: the same block, no copy

    def _stall_once(self):
        import multiprocess

        name = os.environ.get("D4PY_STALL_WORKER")
        if not name or self.stalled:
            return
        if multiprocess.current_process().name != name:  # the others wait for it to stall,
            deadline = time.monotonic() + GIVE_UP_S  # so that it surely gets a task
            while not os.path.exists(os.environ["D4PY_STALLED"]) and time.monotonic() < deadline:
                time.sleep(0.02)
            return
        self.stalled = True
        with open(os.environ["D4PY_STALLED"] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(os.environ["D4PY_STALLED"] + ".tmp", os.environ["D4PY_STALLED"])
        time.sleep(GIVE_UP_S)


class Sink(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.count = self.sum = 0

    def _process(self, item):
        total, array = item
        first = float(array[0])
        if array.shape != (SIZE,) or first * SIZE != total or float(array[-1]) != first:
            raise ValueError(f"an array arrived wrong: {array[:3]}...{array[-3:]} for {total}")
        self.count += 1
        self.sum += int(first)

    def _postprocess(self):
        self.write("total", (self.count, self.sum))


graph = WorkflowGraph()
hold = Hold()
graph.connect(Arrays(), "output", hold, "input")
graph.connect(hold, "output", Sink(), "input")
