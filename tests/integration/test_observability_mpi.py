"""Watching an mpi run: rank 0 shows every rank's counters; JSON and --plan under mpiexec."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from _helpers import cli, mpiexec, run

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(90)]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

SLOW = """
import time
from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for n in range(24):
            self.write("output", n)


class Slow(IterativePE):
    def _process(self, n):
        time.sleep(0.04)
        return n


class Sink(ConsumerPE):
    def _process(self, n):
        pass


graph = WorkflowGraph()
numbers, slow, sink = Numbers(), Slow(), Sink()
graph.connect(numbers, "output", slow, "input")
graph.connect(slow, "output", sink, "input")
"""


@pytest.fixture
def slow(tmp_path) -> str:
    path = tmp_path / "slow.py"
    path.write_text(textwrap.dedent(SLOW))
    return str(path)


def test_rank_0_shows_the_counters_of_every_rank(slow) -> None:
    done = run([mpiexec(), "-n", "3", *cli("mpi", slow, "--progress")], timeout=60)
    assert done.returncode == 0, done.stderr
    text = ANSI.sub("", done.stderr)
    assert text.count("dispel4py mpi · 3 workers · done in") == 1  # rank 0 alone draws
    final = text[text.rindex("done in") :]
    rows = {line.split()[0]: line.split() for line in final.splitlines()[2:5]}
    assert rows["Slow1"][1:4] == ["3", "24", "24"]  # instances on every rank, all items
    assert rows["Sink2"][2] == "24"


def test_v_progress_lines_on_rank_0(slow) -> None:
    done = run([mpiexec(), "-n", "3", *cli("mpi", slow, "-v", "--progress-interval", "0.2")], timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.startswith("progress ")]
    assert lines, done.stderr
    counts = [int(re.search(r"Slow1 (\d+) in", x).group(1)) for x in lines]
    assert counts == sorted(counts)


def test_stats_json_and_plan_under_mpiexec(slow, tmp_path) -> None:
    stats = tmp_path / "stats.json"
    done = run([mpiexec(), "-n", "2", *cli("mpi", slow, "--stats-json", str(stats))], timeout=60)
    assert done.returncode == 0, done.stderr
    doc = json.loads(stats.read_text())
    assert (doc["mapping"], doc["workers"]) == ("mpi", 2)
    assert doc["pes"]["Slow1"]["items_in"] == 24
    plan = run([mpiexec(), "-n", "2", *cli("mpi", slow, "--plan")], timeout=60)
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.count("mpi: 2 ranks") == 1  # rank 0 alone prints
