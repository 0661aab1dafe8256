"""``timed_mpi`` under a real mpiexec: rank 0 alone writes the files, once, with every
rank's instances; a folder it cannot write ends every rank with one line and exit 2."""

from __future__ import annotations

import csv
import json
import os
import subprocess

import pytest
from _helpers import cli, mpiexec

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(90)]

GT = "dispel4py.examples.graph_testing."


def _timed_mpi(ranks: int, cwd, *args: str):
    cmd = [mpiexec(), "-n", str(ranks), *cli("timed_mpi", *args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd, env=dict(os.environ))


def test_rank_zero_writes_every_instance_once(tmp_path) -> None:
    done = _timed_mpi(3, tmp_path, GT + "grouping_alltoone", "-i", "9", "--run-id", "m", "--print-shape")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Timing monitor enabled for 3 PEs (run_id=m).") == 1
    assert done.stderr.count("Timing summary (per PE) written to: timings/monitor_summary_runm.csv") == 1
    assert done.stderr.count("Concrete nodes:") == 1
    folder = tmp_path / "timings"
    concrete = json.loads((folder / "monitor_concrete_shape_runm.json").read_text())
    instances = {n["instance_id"] for n in concrete["nodes"]}
    assert {n["worker"] for n in concrete["nodes"]} == {0, 1, 2}
    with open(folder / "monitor_instances_runm.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["instance_id"] for r in rows} == instances  # instances of every rank
    counts = {}
    for r in rows:
        counts[r["pe_id"]] = counts.get(r["pe_id"], 0) + int(r["total_count"])
    assert counts == {"TestProducer0": 9, "TestOneInOneOut1": 9, "TestOneInOneOut2": 9}
    for r in rows:
        per_rank = folder / f"monitor_iterations_{r['pe_id']}_rank{r['rank']}_runm.csv"
        with open(per_rank, newline="") as f:
            assert len(list(csv.DictReader(f))) == int(r["total_count"])


def test_a_folder_rank_zero_cannot_write_ends_every_rank(tmp_path) -> None:
    (tmp_path / "afile").write_text("")
    done = _timed_mpi(3, tmp_path, GT + "pipeline_test", "--timing-dir", "afile/t")
    assert done.returncode == 2, done.stderr
    errors = [x for x in done.stderr.splitlines() if x.startswith("dispel4py: error:")]
    assert errors == ["dispel4py: error: --timing-dir: cannot create the folder afile/t: afile is a file"]
    assert "Outputs:" not in done.stdout
