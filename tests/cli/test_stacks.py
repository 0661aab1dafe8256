"""``kill -USR1 <pid>``: the dispel4py command prints its stacks and the run goes on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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


def _mpiexec() -> str:
    """The mpich wheel's mpiexec, next to this Python; missing: a failure in CI, else a skip."""
    found = Path(sys.executable).parent / "mpiexec"
    if not found.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mpiexec not found: pip install 'dispel4py[mpi]'")
        pytest.skip("mpiexec not found (pip install 'dispel4py[mpi]')")
    return str(found)


@pytest.mark.parametrize(
    ("mapping", "who"),
    [
        (["simple"], "driver"),
        (["multi", "-n", "2", "--start-method", "spawn"], r"worker \d"),
        (["multi", "-n", "2", "--start-method", "fork"], r"worker \d"),
        (["mpi"], "rank 0"),
    ],
    ids=["simple", "multi-spawn", "multi-fork", "mpi"],
)
def test_sigusr1_prints_the_stacks_and_the_run_goes_on(tmp_path, mapping: list[str], who: str) -> None:
    """The process running the PE is asked: the driver itself on simple, a spawned worker
    (which inherits nothing from the driver) or a forked one (which inherits the driver's
    label) on multi, rank 0 under mpiexec. Every line of the dump says which process it
    comes from, and its pid."""
    workflow = tmp_path / "waits.py"
    workflow.write_text(textwrap.dedent(WAITS))
    mark, go = tmp_path / "mark", tmp_path / "go"
    env = {"MARK": str(mark), "GO": str(go), "PATH": "/usr/bin:/bin"}
    launcher = [_mpiexec(), "-n", "2"] if mapping[0] == "mpi" else []
    with subprocess.Popen(
        [*launcher, sys.executable, "-m", "dispel4py", mapping[0], str(workflow), *mapping[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as run:
        deadline = time.monotonic() + 30
        while not mark.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if not mark.exists():  # say why (seen once under load: exit code and stderr unknown)
            go.touch()  # a PE that starts now ends at once
            out, err = run.communicate(timeout=30)
            pytest.fail(f"the PE never ran (exit {run.returncode}, hang guard 30 s):\n{err}\n{out}")
        pid = int(mark.read_text())
        os.kill(pid, signal.SIGUSR1)  # handled before the PE looks for "go" again
        go.touch()
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert "{'Waits0': {'output': [42]}}" in out
    assert "most recent call first" in err
    assert "in _process" in err  # the PE's own frame is named
    dump = [x for x in err.splitlines() if "most recent call first" in x or x.lstrip("[").count('File "')]
    label = re.compile(rf"^\[{who}, pid {pid}\] ")
    assert dump and all(label.match(x) for x in dump), err


CRASHES = """
import ctypes
from dispel4py.base import ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class CrashesInC(ProducerPE):
    def _process(self, inputs):
        ctypes.string_at(0)  # a read at address 0: SIGSEGV, as an extension module's bug would


graph = WorkflowGraph()
graph.add(CrashesInC())
"""


@pytest.mark.parametrize(
    "mapping",
    [["simple"], ["multi", "-n", "2"], ["dyn_multi", "-n", "2"]],
    ids=["simple", "multi", "dyn_multi"],
)
def test_a_crash_in_c_code_prints_where_it_happened(tmp_path, mapping: list[str]) -> None:
    """A process killed by SIGSEGV in C code prints its Python stacks first (``faulthandler``):
    the PE's frame is named, and the run fails."""
    workflow = tmp_path / "crashes.py"
    workflow.write_text(textwrap.dedent(CRASHES))
    run = subprocess.run(
        [sys.executable, "-m", "dispel4py", mapping[0], str(workflow), *mapping[1:]],
        capture_output=True,
        text=True,
        timeout=50,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert run.returncode != 0
    assert "Fatal Python error: Segmentation fault" in run.stderr, run.stderr
    assert re.search(r'File ".*crashes\.py", line \d+ in _process', run.stderr), run.stderr
