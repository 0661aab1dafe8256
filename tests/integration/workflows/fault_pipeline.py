"""One small pipeline that fails, on every mapping, in the way the environment asks.

``Numbers`` -> ``Work`` -> ``Sink``, and ``Numbers`` -> ``Busy`` beside them (another output). ``FAULT_MODE``:

* ``raise-preprocess`` / ``raise-process`` / ``raise-postprocess``: ``Work`` raises there;
* ``sys-exit`` / ``os-exit``: ``Work`` calls ``sys.exit(4)`` / ``os._exit(3)`` on an item;
* ``unpicklable``: ``Numbers`` writes thread locks instead of numbers;
* ``hang`` (or nothing): no fault; with ``FAULT_ITEMS``/``FAULT_SLEEP_S`` large the run goes
  on until it is signalled or a worker is killed.

Only the first ``Work`` instance to get there fails (an ``O_EXCL`` token file), so exactly
one fault happens whatever the placement. Once it has, ``Busy`` sleeps 10 s per item: the
run must be cut short, not finish its work. With ``FAULT_HOLD=1``, once the fault has
happened (``fault`` exists) or the test is about to cause one from outside (``outside``
exists), ``Work`` and ``Busy`` hold every item they start until their process is ended: the
run can then end only because of the fault, never by finishing its work.

``FAULT_DIR`` (required, not TMPDIR: that one must stay empty) receives ``fault``, a JSON
record written just before the fault (wall time, pid, PE, instance, item), and
``working-<pid>`` once an instance of ``Work`` in that process has an item, and ``pe-<pid>``
from every process that runs PE code (so that a test knows them all, however short-lived).
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

MODE = os.environ.get("FAULT_MODE", "hang")
ITEMS = int(os.environ.get("FAULT_ITEMS", "6"))
SLEEP_S = float(os.environ.get("FAULT_SLEEP_S", "0"))
DIR = Path(os.environ["FAULT_DIR"])
TOKEN = DIR / "fault"
OUTSIDE = DIR / "outside"
HOLD = os.environ.get("FAULT_HOLD") == "1"
HOLD_S = 600  # longer than any test's hang guard; the test's cleanup kills what is left


def _hold():
    """With FAULT_HOLD=1, once a fault happened: hold this item until the process is ended."""
    if HOLD and (TOKEN.exists() or OUTSIDE.exists()):
        time.sleep(HOLD_S)


def _here():
    (DIR / f"pe-{os.getpid()}").touch()


def _claim_fault(pe, item=None):
    """True in the one instance that fails; it records where and when, just before."""
    try:
        fd = os.open(TOKEN, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    record = {"at": time.time(), "pid": os.getpid(), "pe": pe.id, "instance": pe.rank, "item": item}
    os.write(fd, json.dumps(record).encode())
    os.close(fd)
    return True


class Numbers(ProducerPE):
    def __init__(self):
        super().__init__()
        self._add_output("side")  # to Busy: a fan-out of "output" would copy the locks

    def preprocess(self):
        _here()

    def _process(self, inputs):
        for i in range(ITEMS):
            self.write("side", i)
            if MODE == "unpicklable":
                _claim_fault(self)
                self.write("output", threading.Lock())
            else:
                self.write("output", i)


class Work(IterativePE):
    def preprocess(self):
        _here()
        if MODE == "raise-preprocess" and _claim_fault(self):
            raise ValueError("boom in preprocess")

    def _process(self, x):
        if not getattr(self, "announced", False):
            self.announced = True
            (DIR / f"working-{os.getpid()}").touch()
        if MODE == "raise-process" and _claim_fault(self, x):
            raise ValueError(f"boom in process on item {x}")
        if MODE == "sys-exit" and _claim_fault(self, x):
            sys.exit(4)
        if MODE == "os-exit" and _claim_fault(self, x):
            os._exit(3)
        _hold()
        time.sleep(SLEEP_S)
        return x

    def postprocess(self):
        if MODE == "raise-postprocess" and _claim_fault(self):
            raise ValueError("boom in postprocess")


class Busy(ConsumerPE):
    def preprocess(self):
        _here()

    def _process(self, x):
        _hold()
        time.sleep(10 if TOKEN.exists() else 0.01)


class Sink(ConsumerPE):
    def preprocess(self):
        _here()

    def _process(self, x):
        pass


graph = WorkflowGraph()
numbers, work = Numbers(), Work()
graph.connect(numbers, "output", work, "input")
graph.connect(work, "output", Sink(), "input")
graph.connect(numbers, "side", Busy(), "input")
