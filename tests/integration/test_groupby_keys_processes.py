"""Group-by keys through ``python -m dispel4py`` on real processes.

Keys that are == (True, 1, 1.0, Decimal(1), ...; equal sets; equal frozen dataclasses holding
sets) reach one instance even when they are hashed in processes with different hash seeds
(spawned workers, MPI ranks). A key with no stable encoding (a numpy array) ends the run with
exit 1 and a message naming the destination PE and input, not as a failure of the writer.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
from _helpers import cli, mpiexec

pytestmark = pytest.mark.timeout(120)

EQUAL_KEYS = """
import dataclasses
from decimal import Decimal
from fractions import Fraction

import numpy as np

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    tags: frozenset


GROUPS = {
    "one": [True, 1, 1.0, Decimal(1), Fraction(1), np.int64(1), np.float32(1), complex(1, 0)],
    "words": [frozenset(WORDS), set(reversed(WORDS)), frozenset(sorted(WORDS, key=len))],
    "cell": [Cell("c", frozenset(WORDS)), Cell("c", frozenset(reversed(WORDS)))],
    "half": [0.5, Decimal("0.5"), Fraction(1, 2)],
}
GROUPS.update({"w:" + word: [word, np.str_(word)] for word in WORDS})


class Keys(ProducerPE):
    def _process(self, inputs):
        for label, keys in GROUPS.items():
            for key in keys:
                for _ in range(2):  # round-robin: each key leaves through both relays
                    self.write("output", (key, label))


class Relay(IterativePE):
    def _process(self, data):
        return data


class Recorder(IterativePE):
    def _process(self, data):
        return (self.rank, data[1])


graph = WorkflowGraph()
relay, recorder = Relay(), Recorder()
relay.numprocesses = 2
recorder.numprocesses = 3
recorder.inputconnections["input"]["grouping"] = [0]
graph.connect(Keys(), "output", relay, "input")
graph.connect(relay, "output", recorder, "input")
"""

ARRAY_KEY = """
import numpy as np

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class ArrayKeys(ProducerPE):
    def _process(self, inputs):
        self.write("output", ("fine", 1))
        self.write("output", (np.array([1, 2, 3]), 2))


class Recorder(IterativePE):
    def _process(self, data):
        return (self.rank, str(data[0]))


graph = WorkflowGraph()
recorder = Recorder()
recorder.numprocesses = 3
recorder.inputconnections["input"]["grouping"] = [0]
graph.connect(ArrayKeys(), "output", recorder, "input")
"""

MAPPINGS = {
    "simple": ("simple",),
    "multi-n3": ("multi", "-n", "3"),
    "multi-n3-spawn": ("multi", "-n", "3", "--start-method", "spawn"),
}


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env.pop("PYTHONHASHSEED", None)  # every process draws its own seed
    return env


def _dispel4py(mapping: str, workflow, timeout: float = 90) -> subprocess.CompletedProcess:
    args = [*MAPPINGS[mapping], str(workflow)] if mapping in MAPPINGS else ["mpi", str(workflow)]
    cmd = cli(*args)
    if mapping == "mpi":
        cmd = [mpiexec(), "-n", "3", *cmd]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=workflow.parent, check=False
    )


def _records(stdout: str) -> list[tuple[int, str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("Outputs: ")]
    assert len(lines) == 1, stdout
    outputs = ast.literal_eval(lines[0][len("Outputs: ") :])
    assert list(outputs) == ["Recorder2"], outputs
    return outputs["Recorder2"]["output"]


@pytest.mark.parametrize(
    "mapping", [*MAPPINGS, pytest.param("mpi", marks=pytest.mark.mpi)], ids=[*MAPPINGS, "mpi"]
)
def test_keys_that_compare_equal_reach_one_instance(tmp_path, mapping):
    workflow = tmp_path / "equal_keys.py"
    workflow.write_text(EQUAL_KEYS)
    done = _dispel4py(mapping, workflow)
    assert done.returncode == 0, done.stderr
    ranks: dict[str, set[int]] = {}
    for rank, label in _records(done.stdout):
        ranks.setdefault(label, set()).add(rank)
    assert {label for label in ranks if not label.startswith("w:")} == {"one", "words", "cell", "half"}
    assert all(len(r) == 1 for r in ranks.values()), ranks
    assert len(set().union(*ranks.values())) == 3, ranks  # the keys spread over every instance


@pytest.mark.parametrize(
    "mapping", [*MAPPINGS, pytest.param("mpi", marks=pytest.mark.mpi)], ids=[*MAPPINGS, "mpi"]
)
def test_an_array_key_exits_1_naming_the_destination_pe_and_input(tmp_path, mapping):
    workflow = tmp_path / "array_key.py"
    workflow.write_text(ARRAY_KEY)
    done = _dispel4py(mapping, workflow)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.count("cannot group item") == 1  # said once, also under MPI
    assert "input 'input' of Recorder1 (grouping group-by [0])" in done.stderr
    assert "has type numpy.ndarray" in done.stderr
    assert "Group by a str" in done.stderr
    assert "failed in process" not in done.stderr  # ArrayKeys0 did nothing wrong as a PE
    if mapping != "mpi":  # (under MPI, a rank cut off by MPI_Abort may print its own stack)
        assert "Traceback" not in done.stderr, done.stderr


def test_the_run_used_several_hash_seeds():
    """The spawn and MPI runs above are meaningful: processes without PYTHONHASHSEED draw
    different seeds, so a set of strings iterates in a different order."""
    script = "print(list({'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'}))"
    orders = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=30, check=True
        ).stdout
        for _ in range(4)
    }
    assert len(orders) > 1
