"""multi and zmq_multi end the whole run at once on failure and leave no process behind.

No check reads a clock: once the failure has happened (or the test is about to cause it),
the slow PE holds every item it starts until its process is ended (``D4PY_HOLD_FILE``), so
a run that waited for its work to finish would never end; the waits are hang guards
(``HANG_GUARD_S``) that return as soon as the run is over.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _helpers import WORKFLOWS, cli, descendants_alive, run, run_reaped, wait_gone

pytestmark = pytest.mark.timeout(60)

MAPPINGS = ["multi", "zmq_multi"]
HANG_GUARD_S = 30.0
WORKERS = 3


@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_user_exception_ends_run_fast_with_one_message(
    tmp_path: Path, mapping: str, start_method: str
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"D4PY_MARK_DIR": str(marks), "D4PY_HOLD_FILE": str(tmp_path / "raised")}
    done, leftovers = run_reaped(
        cli(mapping, str(WORKFLOWS / "slow_and_boom.py"), "-n", str(WORKERS), "--start-method", start_method),
        within=HANG_GUARD_S,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    # the slow PE had seconds of work queued and holds every item it starts after the raise:
    # the run ended because of the error, with only the items already started done after it
    at_raise = int(re.search(r"raised at [0-9.]+ with (\d+) Slow items done", done.stderr).group(1))
    assert len(list(marks.iterdir())) - at_raise <= WORKERS
    assert done.stderr.count("dispel4py: error:") == 1
    assert "PE Boom1 (instance" in done.stderr
    assert "on input 'input' with item 42" in done.stderr
    assert "ValueError: bad item 42 raised at" in done.stderr
    assert "slow_and_boom.py" in done.stderr and "_process" in done.stderr
    assert "executor.py" not in done.stderr and "processes/pool.py" not in done.stderr
    assert "Outputs:" not in done.stdout
    assert leftovers == []  # no worker left (this run's own processes only)


def _start(mapping: str, folder: Path) -> subprocess.Popen:
    """slow.py at work (Slow has done an item); the hold file is ``folder/hold``."""
    marks = folder / "marks"
    marks.mkdir()
    env = {**os.environ, "D4PY_MARK_DIR": str(marks), "D4PY_HOLD_FILE": str(folder / "hold")}
    proc = subprocess.Popen(
        cli(mapping, str(WORKFLOWS / "slow.py"), "-n", str(WORKERS)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + HANG_GUARD_S
    while len(descendants_alive(proc.pid)) < WORKERS or not any(marks.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "the run never got to work"
        time.sleep(0.02)
    (folder / "hold").touch()  # Slow holds every item it starts from now on: only a stop ends it
    return proc


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_killed_worker_ends_run_with_clear_message(tmp_path: Path, mapping: str) -> None:
    proc = _start(mapping, tmp_path)
    workers = [
        p for p in psutil.Process(proc.pid).children() if "resource_tracker" not in " ".join(p.cmdline())
    ]
    victim = workers[-1]
    victim.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=HANG_GUARD_S)  # the other workers hold their items
    assert proc.returncode == 1
    assert "died (signal 9) hosting" in err
    assert "Slow1" in err or "Numbers0" in err
    assert wait_gone([p.pid for p in workers], within=HANG_GUARD_S) == []


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_ctrl_c_exits_130_and_leaves_no_child(tmp_path: Path, mapping: str) -> None:
    proc = _start(mapping, tmp_path)
    children = descendants_alive(proc.pid)
    assert children
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_GUARD_S)  # the workers hold their items
    assert proc.returncode == 130
    assert "interrupted" in err
    assert wait_gone(children, within=HANG_GUARD_S) == []


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_unpicklable_item_names_pe_and_port(mapping: str) -> None:
    done, leftovers = run_reaped(cli(mapping, str(WORKFLOWS / "unpicklable.py"), "-n", "2", "-i", "3"))
    assert leftovers == []
    assert done.returncode == 1
    assert "written by Locks0.output to Sink1 input 'input'" in done.stderr
    assert "cannot be pickled" in done.stderr


def test_unpicklable_pe_under_spawn_names_the_pe() -> None:
    code = (
        "import dispel4py\n"
        "from dispel4py.base import ProducerPE, ConsumerPE\n"
        "from dispel4py.workflow_graph import WorkflowGraph\n"
        "class Holder(ProducerPE):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.pending = (i for i in range(3))\n"
        "    def _process(self, inputs): return 1\n"
        "class Sink(ConsumerPE):\n"
        "    def _process(self, x): pass\n"
        "g = WorkflowGraph(); g.connect(Holder(), 'output', Sink(), 'input')\n"
        "try:\n"
        "    dispel4py.run(g, None, 'multi', num=2, start_method='spawn')\n"
        "except dispel4py.TransportError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    done = run([sys.executable, "-c", code])
    assert "ERROR PE Holder0 cannot be sent to worker processes" in done.stdout, done.stderr


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_bad_batch_size_is_a_usage_error(mapping: str) -> None:
    done = run(cli(mapping, str(WORKFLOWS / "slow.py"), "-n", "2", "--batch-size", "0"))
    assert done.returncode == 2
    assert "--batch-size must be" in done.stderr and "at least 1" in done.stderr
