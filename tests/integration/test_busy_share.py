"""Instances and busy share are right on every mapping, checked against a known workload.

The workload: 40 items through ``Nap``, which sleeps ``NAP_S`` per item, on 4 workers. Its
busy seconds are then at least ``40 * NAP_S`` whatever the machine's speed (a sleep never
ends early), and its busy share — ``busy_s / instances / elapsed_s`` — can never pass 1,
since no instance is busy longer than the run. Both bounds come from the run's own numbers,
so a loaded machine changes the share, never the verdict. ``instances`` is the plan's
instances of a PE; for a shared PE of a dynamic mapping, the workers that ran a copy
(``docs/observability.md``): the JSON's ``copies``, the ``--stats`` table and the live
board's last frame must all say the same.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _helpers import cli, mpiexec, run
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

import dispel4py
from dispel4py.engine.result_json import stats_dict
from dispel4py.live import LiveBoard
from dispel4py.observe.report import BUSY_SHARE, IDLE_SHARE

pytestmark = pytest.mark.timeout(180)

ITEMS, NAP_S, WORKERS = 40, 0.05, 4
SLACK = 0.02  # rounding of the JSON (4 decimals) and clocks read a few microseconds apart

WORKFLOW = """
import time
from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for n in range(ITEMS):
            self.write("output", n)


class Nap(IterativePE):
    def _process(self, n):
        time.sleep(NAP_S)
        return n


class Sink(ConsumerPE):
    def _process(self, n):
        pass


graph = WorkflowGraph()
numbers, nap, sink = Numbers(), Nap(), Sink()
NAP_INSTANCES
graph.connect(numbers, "output", nap, "input")
graph.connect(nap, "output", sink, "input")
"""


def _workflow(tmp_path: Path, nap_instances: int | None) -> str:
    """``nap_instances``: Nap's ``numprocesses`` (None: not set, so shared on ``dyn_*``)."""
    path = tmp_path / "nap.py"
    text = WORKFLOW.replace("ITEMS", str(ITEMS)).replace("NAP_S", str(NAP_S))
    setting = "" if nap_instances is None else f"nap.numprocesses = {nap_instances}"
    path.write_text(textwrap.dedent(text.replace("NAP_INSTANCES", setting)))
    return str(path)


def _stats_table(stderr: str) -> dict[str, int]:
    """``--stats``: PE -> instances column."""
    rows = re.findall(r"^(\w+\d+)\s+(\d+)\s+\d+\s+\d+\s+[\d.]+$", stderr, re.MULTILINE)
    return {pe: int(n) for pe, n in rows}


def _check_known_share(doc: dict[str, Any], dynamic: bool) -> dict[str, Any]:
    """The bounds of the module docstring, and every count agreeing; Nap's row."""
    elapsed = doc["elapsed_s"]
    (name,) = [pe for pe in doc["pes"] if pe.startswith("Nap")]
    nap = doc["pes"][name]
    rows = [r for r in doc["instances"] if r["pe"] == name]
    assert nap["instances"] == sum(r["copies"] for r in rows), doc
    if dynamic:
        assert [r["worker"] for r in rows] in ([-1], [rows[0]["worker"]]), rows  # one shared instance
        assert 1 <= nap["instances"] <= doc["workers"], doc
    else:
        assert nap["instances"] == len(doc["layout"][name]), doc
    assert nap["busy_s"] >= ITEMS * NAP_S, doc  # a sleep never ends early
    share = nap["busy_s"] / nap["instances"] / elapsed
    assert abs(nap["busy_share"] - share) <= 1e-3, doc
    assert ITEMS * NAP_S / nap["instances"] / elapsed - SLACK <= nap["busy_share"] <= 1 + SLACK, doc
    for pe, row in doc["pes"].items():
        assert 0 <= row["busy_share"] <= 1 + SLACK, (pe, doc)
    return nap


def _run_cli(args: list[str], tmp_path: Path, timeout: float = 120) -> tuple[dict[str, Any], str]:
    stats = tmp_path / "s.json"
    done = run([*args, "--stats", "--stats-json", str(stats)], timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(stats.read_text()), done.stderr


@pytest.mark.parametrize("mapping", ["simple", "multi", "zmq_multi", "dyn_multi", "dyn_auto_multi"])
def test_busy_share_of_a_known_workload(mapping: str, tmp_path: Path) -> None:
    dynamic = mapping.startswith("dyn_")
    workflow = _workflow(tmp_path, None if dynamic else 2)
    doc, stderr = _run_cli(cli(mapping, workflow, "-n", str(WORKERS)), tmp_path)
    nap = _check_known_share(doc, dynamic)
    assert _stats_table(stderr)["Nap1"] == nap["instances"], stderr
    if mapping.startswith("dyn_"):
        assert doc["bottleneck"] is None  # a shared PE is spread over the free workers already


@pytest.mark.parametrize("mapping", ["dyn_redis", "dyn_auto_redis", "hybrid_redis"])
def test_busy_share_on_redis(mapping: str, tmp_path: Path, redis_server: RedisServer) -> None:
    args = cli(mapping, _workflow(tmp_path, None), "-n", str(WORKERS), "--redis-url", redis_server.url)
    doc, stderr = _run_cli(args, tmp_path)
    nap = _check_known_share(doc, dynamic=True)
    assert _stats_table(stderr)["Nap1"] == nap["instances"], stderr


@pytest.mark.mpi
def test_busy_share_under_mpi(tmp_path: Path) -> None:
    doc, stderr = _run_cli([mpiexec(), "-n", str(WORKERS), *cli("mpi", _workflow(tmp_path, 2))], tmp_path)
    nap = _check_known_share(doc, dynamic=False)
    assert _stats_table(stderr)["Nap1"] == nap["instances"], stderr


def test_bottleneck_names_the_one_slow_instance_on_multi(tmp_path: Path) -> None:
    """Two ``Nap`` instances of 4 workers, the other two nearly idle: Nap bounds the run
    when its share reaches ``BUSY_SHARE`` (it does unless starting the workers took most of
    the run on a loaded machine), and the hint says so with the JSON's share and instances."""
    doc, stderr = _run_cli(cli("multi", _workflow(tmp_path, 2), "-n", str(WORKERS)), tmp_path)
    nap = _check_known_share(doc, dynamic=False)
    assert nap["instances"] == 2
    idle = sum(row["busy_s"] for row in doc["pes"].values()) < IDLE_SHARE * WORKERS * doc["elapsed_s"]
    found = doc["bottleneck"]
    if nap["busy_share"] < BUSY_SHARE or not idle:
        assert found is None, doc
        return
    assert found is not None and found["pe"] == "Nap1", doc
    assert found["busy_share"] == nap["busy_share"] and found["instances"] == 2
    assert f"bottleneck: Nap1 was busy {nap['busy_share']:.0%}" in stderr


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi"])
def test_the_live_boards_last_frame_agrees_with_the_stats(mapping: str, tmp_path: Path) -> None:
    sys.path.insert(0, str(tmp_path))
    try:
        _workflow(tmp_path, None if mapping.startswith("dyn_") else 2)
        module = __import__("nap")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("nap", None)
    board = LiveBoard(every=0.1)
    result = dispel4py.run(module.graph, None, mapping, num=WORKERS, board=board)
    doc = stats_dict(result)
    _check_known_share(doc, dynamic=mapping.startswith("dyn_"))
    final = {row.pe: row for row in board.progress().pes}
    for pe, row in doc["pes"].items():
        assert final[pe].instances == row["instances"], (pe, doc)
        assert abs(final[pe].busy - min(1.0, row["busy_share"])) <= 0.05, (pe, final[pe], row)
