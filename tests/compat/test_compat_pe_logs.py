"""``self.log`` lines go to stdout as the original printed them; engine messages to stderr.

Also what ``self.rank`` and ``self.instance_index`` are on each mapping.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

LOGGING = """
    from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
    from dispel4py.workflow_graph import WorkflowGraph


    class Numbers(ProducerPE):
        def _process(self, inputs):
            for n in range(1, 7):
                self.write("output", n)


    class Square(IterativePE):
        def __init__(self):
            super().__init__()
            self.numprocesses = 3

        def _postprocess(self):
            self.log(f"instance {self.instance_index} rank {self.rank}")

        def _process(self, n):
            return n * n


    class Total(ConsumerPE):
        def __init__(self):
            super().__init__()
            self.inputconnections["input"]["grouping"] = "global"
            self._add_output("total")
            self.total = 0

        def _process(self, n):
            self.total += n

        def _postprocess(self):
            self.log(f"total is {self.total}")
            self.write("total", self.total)


    numbers, square, total = Numbers(), Square(), Total()
    graph = WorkflowGraph()
    graph.connect(numbers, "output", square, "input")
    graph.connect(square, "output", total, "input")
"""


def pe_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " (rank " in line]


def instance_lines(text: str) -> list[tuple[int, int]]:
    """(instance_index, rank) logged by each Square instance."""
    found = []
    for line in pe_lines(text):
        if ": instance " in line:
            words = line.split(": instance ", 1)[1].split()
            found.append((int(words[0]), int(words[2])))
    return sorted(found)


@pytest.mark.parametrize("mapping", [("simple",), ("multi", "-n", "4"), ("dyn_multi", "-n", "2")])
def test_pe_log_lines_on_stdout_before_the_results(run_cli, write_workflow, mapping):
    path = write_workflow("logs", LOGGING)
    done = run_cli(*mapping, path, "-v")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "Outputs: {'Total2': {'total': [91]}}"
    assert any(line.startswith("Total2 (rank ") and line.endswith("): total is 91") for line in lines)
    assert pe_lines(done.stderr) == [] or all("Processed" in x for x in pe_lines(done.stderr))
    assert "Processing 1 iteration." in done.stderr  # engine messages stay on stderr
    assert "Processed" not in done.stdout  # -v lines are engine messages


def test_log_to_stderr(run_cli, write_workflow):
    path = write_workflow("logs", LOGGING)
    done = run_cli("simple", path, "--log-to-stderr")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Outputs: {'Total2': {'total': [91]}}\n"
    assert "Total2 (rank 4): total is 91" in done.stderr.splitlines()


def test_quiet_hides_pe_logs(run_cli, write_workflow):
    path = write_workflow("logs", LOGGING)
    done = run_cli("simple", path, "-q")
    assert done.stdout == "Outputs: {'Total2': {'total': [91]}}\n"
    assert done.stderr == ""


def test_quiet_hides_pe_logs_sent_to_stderr(run_cli, write_workflow):
    path = write_workflow("logs", LOGGING)
    done = run_cli("simple", path, "-q", "--log-to-stderr")
    assert done.stdout == "Outputs: {'Total2': {'total': [91]}}\n"
    assert done.stderr == ""


def test_redirecting_stdout_keeps_logs_with_results(tmp_path, write_workflow):
    """``dispel4py simple wf.py > out.txt`` captures what the original captured."""
    path = write_workflow("logs", LOGGING)
    out = tmp_path / "out.txt"
    with open(out, "w") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "dispel4py", "simple", str(path)],
            stdout=handle,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines()[-2:] == [
        "Total2 (rank 4): total is 91",
        "Outputs: {'Total2': {'total': [91]}}",
    ]


# -- rank and instance_index ------------------------------------------------------------------------
def test_instance_index_on_simple(run_cli, write_workflow):
    path = write_workflow("logs", LOGGING)
    done = run_cli("simple", path)
    # simple: one instance per PE except the explicit numprocesses = 3
    assert instance_lines(done.stdout) == [(0, 1), (1, 2), (2, 3)]


def test_instance_index_on_multi(run_cli, write_workflow):
    path = write_workflow("logs", LOGGING)
    done = run_cli("multi", path, "-n", "8")
    assert done.returncode == 0, done.stderr
    assert instance_lines(done.stdout) == [(0, 1), (1, 2), (2, 3)]


def test_rank_depends_on_the_layout_but_instance_index_does_not(run_cli, write_workflow):
    """With -n 2 the Square instances are not the ones right after the source: the rank is a
    plan-wide id, the instance index stays 0..k-1."""
    path = write_workflow("logs", LOGGING)
    done = run_cli("multi", path, "-n", "2")
    assert done.returncode == 0, done.stderr
    found = instance_lines(done.stdout)
    assert [index for index, _ in found] == [0, 1, 2]
    assert len({rank for _, rank in found}) == 3


# -- from Python ----------------------------------------------------------------------------------
def test_python_api_logs(tmp_path, write_workflow):
    """On stdout while the application configures no logging (as the original printed them),
    then through the application's handlers; from every mapping's workers."""
    write_workflow("logs", LOGGING)
    script = tmp_path / "main.py"
    script.write_text(
        "import logging, sys\n"
        "import dispel4py\n"
        "from logs import graph\n"
        "if __name__ == '__main__':\n"
        "    dispel4py.run(graph, mapping='simple')  # logging not configured\n"
        "    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
        "    result = dispel4py.run(graph, mapping='multi', num=3)\n"
        "    print(result.outputs)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if "total is" in line] == ["Total2 (rank 4): total is 91"] * 2
    assert ast.literal_eval(lines[-1]) == {"Total2": {"total": [91]}}
    assert "total is" not in done.stderr


# -- MPI ------------------------------------------------------------------------------------------------
def _mpiexec() -> str:
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = local if os.path.exists(local) else shutil.which("mpiexec")
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mpiexec not found: pip install 'dispel4py[mpi]'")
        pytest.skip("mpiexec not found")
    return found


@pytest.mark.mpi
def test_pe_logs_on_stdout_under_mpi(tmp_path, write_workflow):
    path = write_workflow("logs", LOGGING)
    done = subprocess.run(
        [_mpiexec(), "-n", "3", sys.executable, "-m", "dispel4py", "mpi", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'Total2': {'total': [91]}}" in done.stdout.splitlines()
    assert any(line.endswith("total is 91") for line in pe_lines(done.stdout))
    assert [index for index, _ in instance_lines(done.stdout)] == [0, 1, 2]
    assert "total is" not in done.stderr
