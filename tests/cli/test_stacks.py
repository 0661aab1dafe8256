"""``kill -USR1 <pid>``: the dispel4py command prints its stacks and the run goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.timeout(60)

WAITS = """
import os, time
from dispel4py.base import ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Waits(ProducerPE):
    def _process(self, inputs):
        with open(os.environ["MARK"] + ".tmp", "w") as f:  # the run is inside this PE now
            f.write(str(os.getpid()))
        os.rename(os.environ["MARK"] + ".tmp", os.environ["MARK"])
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.01)
        self.write("output", 42)


graph = WorkflowGraph()
graph.add(Waits())
"""


@pytest.mark.parametrize(
    "mapping", [["simple"], ["multi", "-n", "2", "--start-method", "spawn"]], ids=["simple", "multi-spawn"]
)
def test_sigusr1_prints_the_stacks_and_the_run_goes_on(tmp_path, mapping: list[str]) -> None:
    """The process running the PE is asked: the driver itself on simple, a spawned worker
    (which inherits nothing from the driver) on multi."""
    workflow = tmp_path / "waits.py"
    workflow.write_text(textwrap.dedent(WAITS))
    mark, go = tmp_path / "mark", tmp_path / "go"
    env = {"MARK": str(mark), "GO": str(go), "PATH": "/usr/bin:/bin"}
    with subprocess.Popen(
        [sys.executable, "-m", "dispel4py", mapping[0], str(workflow), *mapping[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as run:
        deadline = time.monotonic() + 30
        while not mark.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(int(mark.read_text()), signal.SIGUSR1)  # handled before the PE looks for "go" again
        go.touch()
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert "{'Waits0': {'output': [42]}}" in out
    assert "most recent call first" in err
    assert "in _process" in err  # the PE's own frame is named
