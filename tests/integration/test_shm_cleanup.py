"""Large items through shared memory on the local process mappings (mappings/processes/shm.py)
and the Redis mappings' workers on the driver's host (mappings/redis/payloads.py, each run with
its private embedded server): nothing is left in /dev/shm after a run, whichever way it ends.

Each run's folder is ``d4py-shm-<driver pid>-*`` under /dev/shm, so a test counts only the
folders of the driver it started, never another run's. A run is stopped while large items are
in flight (blocks of its arena taken): a PE error, SIGKILL of a worker, SIGTERM and
SIGINT of the driver, SIGKILL of the driver (its workers remove the folder).
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from _helpers import cli, wait_gone

from dispel4py.mappings.processes.arena import bytes_in_flight
from dispel4py.mappings.processes.shm import shm_folder_prefix

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system"),
]

MAPPINGS = ["multi", "zmq_multi", "dyn_multi", "dyn_redis", "dyn_auto_redis"]

# Source -> Hold -> global sink, arrays of 1 MB, which Hold passes on with their sum and the
# sink checks. Hold fails on its 3rd item (D4PY_SHM_MODE = error), or waits for a long time
# on its first (block), so that items wait in flight.
WORKFLOW = textwrap.dedent(
    """
    import os, time
    import numpy as np
    from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
    from dispel4py.workflow_graph import WorkflowGraph

    class Arrays(ProducerPE):
        def _process(self, inputs):
            for i in range(int(os.environ.get("D4PY_SHM_ITEMS", "400"))):
                self.write("output", np.full(1 << 17, float(i)))

    class Hold(IterativePE):
        seen = 0
        def _process(self, item):
            self.seen += 1
            if os.environ.get("D4PY_SHM_MODE") == "error" and self.seen == 3:
                raise ValueError("boom on purpose")
            if os.environ.get("D4PY_SHM_MODE") == "block":
                time.sleep(600)
            return float(item.sum()), item  # passed on as it came: the same block, no copy

    class Sink(ConsumerPE):
        def __init__(self):
            super().__init__()
            self.inputconnections["input"]["grouping"] = "global"
        def _process(self, item):
            total, array = item
            if array.shape != (1 << 17,) or float(array[0]) * (1 << 17) != total:
                raise ValueError(f"an array arrived wrong: {array[:3]} for {total}")

    graph = WorkflowGraph()
    hold = Hold()
    graph.connect(Arrays(), "output", hold, "input")
    graph.connect(hold, "output", Sink(), "input")
    """
)


def folders(pid: int) -> list[str]:
    return glob.glob(os.path.join("/dev/shm", shm_folder_prefix(pid) + "*"))


def in_flight(pid: int) -> int:
    """Bytes of large items sent and not yet received, in the run's arena."""
    return sum(bytes_in_flight(f) for f in folders(pid))


def start(tmp_path: Path, mapping: str, mode: str) -> subprocess.Popen:
    (tmp_path / "wf.py").write_text(WORKFLOW)
    return subprocess.Popen(
        cli(mapping, "wf.py", "-n", "3"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # fewer items on Redis, whose run costs more per item: the paths are the same
        env={
            **os.environ,
            "D4PY_SHM_MODE": mode,
            **({"D4PY_SHM_ITEMS": "100"} if "redis" in mapping else {}),
        },
    )


def wait_for_blocks(proc: subprocess.Popen) -> None:
    """Until the run has large items in flight (bounded: the test's timeout)."""
    while in_flight(proc.pid) == 0:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=90)
    return proc.returncode, err


@pytest.mark.parametrize("mapping", [*MAPPINGS, "hybrid_redis"])
def test_a_normal_run_leaves_nothing(tmp_path, mapping) -> None:
    proc = start(tmp_path, mapping, "plain")
    code, err = finish(proc)
    assert code == 0, err
    assert folders(proc.pid) == []


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_a_pe_error_leaves_nothing(tmp_path, mapping) -> None:
    proc = start(tmp_path, mapping, "error")
    code, err = finish(proc)
    assert code == 1 and "boom on purpose" in err, err
    assert folders(proc.pid) == []


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_a_killed_worker_leaves_nothing(tmp_path, mapping) -> None:
    proc = start(tmp_path, mapping, "block")
    wait_for_blocks(proc)
    driver = psutil.Process(proc.pid)
    # the first worker started: on Redis it hosts the source, so its death ends the run too
    workers = [c for c in driver.children() if c.cmdline() == driver.cmdline()]
    min(workers, key=lambda c: (c.create_time(), c.pid)).kill()
    code, err = finish(proc)
    assert code != 0 and "died (signal 9)" in err, err
    assert folders(proc.pid) == []


@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_driver_leaves_nothing(tmp_path, mapping, sig) -> None:
    proc = start(tmp_path, mapping, "block")
    wait_for_blocks(proc)
    proc.send_signal(sig)
    code, err = finish(proc)
    assert code in (130, 143), err
    assert folders(proc.pid) == []


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "dyn_redis"])
def test_a_killed_driver_leaves_nothing(tmp_path, mapping) -> None:
    proc = start(tmp_path, mapping, "block")
    wait_for_blocks(proc)
    workers = [c.pid for c in psutil.Process(proc.pid).children()]
    proc.kill()
    finish(proc)
    assert wait_gone(workers, within=60) == []  # each removes the folder before it ends
    assert folders(proc.pid) == []


def test_the_prefix_names_only_this_driver() -> None:
    assert not shm_folder_prefix(123).startswith(shm_folder_prefix(12))
