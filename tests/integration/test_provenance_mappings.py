"""Provenance on every mapping: the same lineage graph as ``simple`` (up to the ids of
instances, workers and processes), the same results as without provenance, and every
output linked to the source items it came from. The records go through each worker's
writer process (small batches, the writer started with the second)."""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from _helpers import WORKFLOWS, cli, mpiexec, run
from prov_support import lineage_of, records
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(180)

WORKFLOW = str(WORKFLOWS / "prov_lineage.py")
N = 12
PES = {"Numbers0", "Double1", "Counter2", "Total3", "Window4", "Pairs5"}


def outputs_of(stdout: str) -> dict:
    (line,) = [x for x in stdout.splitlines() if x.startswith("Outputs: ")]
    return ast.literal_eval(line.removeprefix("Outputs: "))


# every worker's records go through its writer process (pipestore.py), in batches of 4
WRITER = {"DISPEL4PY_PROV_WRITER_RATE": "0"}
BULK = ("--provenance-bulk-size", "4")


def recorded(folder: Path, *args: str, prefix: list[str] | None = None) -> tuple[dict, dict]:
    cmd = [*(prefix or []), *cli(*args, WORKFLOW, "--provenance-path", str(folder), *BULK)]
    done = run(cmd, timeout=150, env=WRITER)
    assert done.returncode == 0, done.stderr
    return outputs_of(done.stdout), lineage_of(folder)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, dict]:
    """The run on ``simple``, and its outputs without provenance."""
    plain = run(cli("simple", WORKFLOW))
    assert plain.returncode == 0, plain.stderr
    outputs, lineage = recorded(tmp_path_factory.mktemp("simple"), "simple")
    assert outputs == outputs_of(plain.stdout)  # nothing of provenance in Outputs:
    return outputs, lineage


def check_values(lineage: dict) -> None:
    """Every windowed output derives from exactly the source items whose values it holds."""
    kinds = Counter(pe for pe, _, _ in lineage["written"])
    assert kinds == {
        "Numbers0": N,
        "Double1": N,
        "Counter2": N,
        "Total3": 1,
        "Window4": N - 2,
        "Pairs5": N // 2,
    }
    for pe, content, sources in lineage["written"]:
        meta = content[0]
        if pe == "Pairs5":
            assert sources == {v // 2 for v in meta["pair"]}
        elif pe == "Window4":
            assert len(sources) == 3 and sum(2 * i for i in sources) == meta["sum"]
        elif pe == "Total3":
            assert sources == set(range(N))  # a postprocess total: every item it summed
        elif pe != "Numbers0":
            assert len(sources) == 1  # stateless, and the stateful counter: one item each


def same_graph(lineage: dict, reference: dict) -> None:
    stable = {"Numbers0", "Double1", "Counter2", "Total3"}  # Window/Pairs see items in arrival order
    mine = Counter({k: v for k, v in lineage["streams"].items() if k[0] in stable})
    theirs = Counter({k: v for k, v in reference["streams"].items() if k[0] in stable})
    assert mine == theirs


def test_simple(reference) -> None:
    outputs, lineage = reference
    check_values(lineage)
    assert outputs["Total3"]["output"] == [sum(2 * i for i in range(N))]


@pytest.mark.parametrize(
    "mapping",
    [
        ("multi", "-n", "4"),
        ("dyn_multi", "-n", "3"),
        ("zmq_multi", "-n", "3"),
        ("dyn_auto_multi", "-n", "3"),
        ("multi", "-n", "3", "--start-method", "spawn"),
        ("timed_multi", "-n", "3", "--no-graph-figures"),
        ("timed_simple", "--no-graph-figures"),
    ],
    ids=lambda m: "-".join(m),
)
def test_process_mappings_give_the_lineage_of_simple(mapping, reference, tmp_path) -> None:
    outputs, lineage = recorded(tmp_path / "prov", *mapping)
    assert outputs["Total3"] == reference[0]["Total3"]  # Window/Pairs: in arrival order
    check_values(lineage)
    same_graph(lineage, reference[1])
    runs = [r for r in records(tmp_path / "prov") if r["type"] == "workflow_run"]
    assert len(runs) == 1 and runs[0]["mapping"] == mapping[0]
    assert {r["runId"] for r in records(tmp_path / "prov")} == {runs[0]["runId"]}


@pytest.mark.mpi
def test_mpi_gives_the_lineage_of_simple(reference, tmp_path) -> None:
    _, lineage = recorded(tmp_path / "prov", "mpi", prefix=[mpiexec(), "-n", "4"])
    check_values(lineage)
    same_graph(lineage, reference[1])
    assert len({r["runId"] for r in records(tmp_path / "prov")}) == 1  # one run id on every rank
    assert len({r["pid"] for r in records(tmp_path / "prov") if r["type"] == "lineage"}) > 1


@pytest.mark.mpi
def test_timed_mpi_gives_the_lineage_of_simple(reference, tmp_path) -> None:
    """The timed mapping's per-rank timing wrappers and rank-0 files leave the lineage alone."""
    args = ("--provenance-path", str(tmp_path / "prov"), "--timing-dir", str(tmp_path / "timings"), *BULK)
    cmd = [mpiexec(), "-n", "4", *cli("timed_mpi", WORKFLOW, *args, "--no-graph-figures")]
    done = run(cmd, timeout=150, env=WRITER)
    assert done.returncode == 0, done.stderr
    assert outputs_of(done.stdout)["Total3"] == reference[0]["Total3"]
    lineage = lineage_of(tmp_path / "prov")
    check_values(lineage)
    same_graph(lineage, reference[1])
    runs = [r for r in records(tmp_path / "prov") if r["type"] == "workflow_run"]
    assert len(runs) == 1 and runs[0]["mapping"] == "timed_mpi"  # rank 0 alone starts the run
    assert len({r["runId"] for r in records(tmp_path / "prov")}) == 1  # one run id on every rank
    assert len({r["pid"] for r in records(tmp_path / "prov") if r["type"] == "lineage"}) > 1
    assert any((tmp_path / "timings").glob("monitor_summary_run*.csv"))  # still timed


@pytest.mark.parametrize("mapping", ["dyn_redis", "redis", "hybrid_redis", "dyn_auto_redis"])
def test_redis_mappings_give_the_lineage_of_simple(mapping, reference, redis_server, tmp_path) -> None:
    _, lineage = recorded(tmp_path / "prov", mapping, "-n", "3", "--redis-url", redis_server.url)
    check_values(lineage)
    same_graph(lineage, reference[1])


def test_remote_redis_workers_write_their_own_folders(redis_server, reference, tmp_path) -> None:
    """Workers that join from elsewhere (here: other working folders) write their records
    there; the folders put together hold the run's whole lineage."""
    key = tmp_path / "run.key"
    key.write_text("a shared secret of the two hosts\n")
    key.chmod(0o600)  # a run key others can read is refused
    places = [tmp_path / name for name in ("driver", "w1", "w2")]
    for place in places:
        place.mkdir()
    flags = ["--key-file", str(key), "--redis-url", redis_server.url]
    driver = subprocess.Popen(
        cli("dyn_redis", WORKFLOW, "-n", "0", *flags, "--provenance-path", "prov"),
        cwd=places[0],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    joiners = [
        subprocess.Popen(cli("worker", *flags, "--wait", "60"), cwd=p, stderr=subprocess.PIPE, text=True)
        for p in places[1:]
    ]
    try:
        out, err = driver.communicate(timeout=150)
        for joiner in joiners:  # one that came after the run was over waits for another: stop it
            try:
                joiner.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                joiner.terminate()
                joiner.communicate(timeout=30)
    finally:
        for process in (driver, *joiners):
            process.kill()
            process.communicate()
    assert driver.returncode == 0, err
    assert outputs_of(out)["Total3"] == {"output": [sum(2 * i for i in range(N))]}
    on_driver = records(places[0] / "prov")
    assert [r["type"] for r in on_driver] == ["workflow_run"]  # every lineage record: on the workers
    merged = tmp_path / "merged"
    merged.mkdir()
    for place in places:
        for path in (place / "prov").glob("bulk_*"):
            shutil.copy(
                path,
                merged / f"{place.name}-{path.name}".replace(f"{place.name}-bulk_", "bulk_" + place.name),
            )
    lineage = lineage_of(merged)
    check_values(lineage)
    same_graph(lineage, reference[1])
