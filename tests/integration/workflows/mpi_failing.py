"""A pipeline whose middle PE fails on one MPI rank, in the way the environment asks.

``D4P_FAIL`` says how: ``raise-preprocess``, ``raise-process``, ``raise-postprocess``,
``sys-exit``, ``os-exit``, ``fork-os-exit`` (a forked child, holding every descriptor of
the rank, outlives it), ``daemon-os-exit`` (a helper in its own session keeps the rank's
stdout/stderr open and outlives it) or ``hang`` (nothing fails: the run goes on until it
is killed). ``D4P_FAIL_RANK`` says on which rank (default 1; ``all``: every rank).
Every other instance works slowly (``D4P_ITEMS`` items, default 400, 0.05 s each), so
the run is still going when the failure happens. With ``D4P_HOLD=1``, once ``failed-at``
exists every instance of Work holds the items it starts until its rank is ended: the run
can then only end because of the failure, never by finishing its work.

``D4P_RUN_DIR`` (required) is where the run leaves what the tests check:

* ``rank-<r>.json`` on import, on every rank: its pid, and the MPICH shared memory and
  hydra topology files of this run (read from /proc, whether already unlinked or not);
* ``working-<r>`` once an instance on rank r processes items;
* ``failed-at`` (wall time) just before the failure; ``helper.pid`` for a helper.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

MODE = os.environ.get("D4P_FAIL", "")
FAIL_RANK = os.environ.get("D4P_FAIL_RANK", "1")
RANK = os.environ.get("PMI_RANK", "0")
RUN_DIR = Path(os.environ["D4P_RUN_DIR"])
ON_FAILING_RANK = FAIL_RANK in (RANK, "all")
HELPER = [sys.executable, "-c", "import time; time.sleep(20)"]
HOLD = os.environ.get("D4P_HOLD") == "1"


def _run_files() -> list[str]:
    """This run's /dev/shm/mpich_shm_* (mapped here) and /tmp/hydra_hwloc_xmlfile_* (held by
    hydra's proxy, our parent)."""
    maps = Path("/proc/self/maps").read_text().splitlines()
    found = {line.split(maxsplit=5)[-1].removesuffix(" (deleted)") for line in maps if "/mpich_shm_" in line}
    for entry in Path(f"/proc/{os.getppid()}/fd").iterdir():
        try:
            target = os.readlink(entry).removesuffix(" (deleted)")
        except OSError:
            continue
        if "hydra_hwloc_xmlfile_" in target:
            found.add(target)
    return sorted(found)


(RUN_DIR / f"rank-{RANK}.json").write_text(json.dumps({"pid": os.getpid(), "files": _run_files()}))


def _fail(phase: str) -> None:
    if not ON_FAILING_RANK or MODE in ("", "hang"):
        return
    if f"raise-{phase}" == MODE:
        (RUN_DIR / "failed-at").write_text(str(time.time()))
        raise ValueError(f"boom in {phase} on rank {RANK}")
    if phase != "process" or MODE.startswith("raise-"):
        return
    (RUN_DIR / "failed-at").write_text(str(time.time()))
    if MODE == "sys-exit":
        sys.exit(4)
    if MODE == "fork-os-exit":
        _fork_helper()
    elif MODE == "daemon-os-exit":
        helper = subprocess.Popen(HELPER, stdout=sys.stdout, stderr=sys.stderr, start_new_session=True)
        (RUN_DIR / "helper.pid").write_text(str(helper.pid))
    os._exit(3)


def _fork_helper() -> None:
    """A bare fork: the child inherits every descriptor, as a C extension's helper would."""
    pid = os.fork()
    if pid == 0:
        os.execv(HELPER[0], HELPER)
    (RUN_DIR / "helper.pid").write_text(str(pid))


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(int(os.environ.get("D4P_ITEMS", "400"))):
            self.write("output", i)


class Work(IterativePE):
    def preprocess(self):
        _fail("preprocess")

    def _process(self, x):
        if not getattr(self, "announced", False):
            self.announced = True
            (RUN_DIR / f"working-{RANK}").touch()
        _fail("process")
        if HOLD and (RUN_DIR / "failed-at").exists():
            time.sleep(600)  # until the rank is ended (the test's cleanup kills what is left)
        time.sleep(0.05)
        return x

    def postprocess(self):
        _fail("postprocess")


class Sink(ConsumerPE):
    def _process(self, x):
        pass


graph = WorkflowGraph()
work = Work()
graph.connect(Numbers(), "output", work, "input")
graph.connect(work, "output", Sink(), "input")
