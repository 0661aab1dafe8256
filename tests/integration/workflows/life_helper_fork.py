"""A PE forks a long-lived helper (which inherits the worker's pipe to the driver), then
its worker dies, unless LIFE_HELPER_DIE=0. The helper's pid goes to LIFE_HELPER_PIDFILE;
it lives LIFE_HELPER_S seconds (default 20), or until the test ends it."""

import os
import signal
import sys
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(100):
            self.write("output", i)


class ForkThenDie(IterativePE):
    def _process(self, x):
        if x == 5:
            pid = os.fork()
            if pid == 0:  # the helper: lives on with every inherited descriptor
                try:
                    time.sleep(float(os.environ.get("LIFE_HELPER_S", "20")))
                finally:
                    os._exit(0)
            with open(os.environ["LIFE_HELPER_PIDFILE"], "w") as f:
                f.write(str(pid))
            if os.environ.get("LIFE_HELPER_DIE", "1") == "1":
                print(f"worker dying at {time.time()}", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.005)
        return x


class Sink(ConsumerPE):
    def _process(self, x):
        pass


graph = WorkflowGraph()
numbers, forks = Numbers(), ForkThenDie()
graph.connect(numbers, "output", forks, "input")
graph.connect(forks, "output", Sink(), "input")
