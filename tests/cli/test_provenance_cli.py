"""Provenance from the command line: the original's flags, its record format, bad
configuration as usage errors before anything runs, and ``dispel4py prov export|trace``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

WC = "dispel4py.examples.graph_testing.word_count"
SAMPLE = Path("/work/shared/spec/prov-samples/word_count_simple_i3.json")
CONFIG = {
    "s-prov:save-mode": "file",
    "s-prov:workflowName": "word_count",
    "s-prov:workflowType": "dispel4py",
    "s-prov:workflowId": "urn:workflow:word_count",
    "s-prov:creator": "tester",
}


def bulk(folder: Path) -> list[list[dict]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("bulk_*"))]


@pytest.fixture
def recorded(run_cli, tmp_path) -> Path:
    """word_count -i 3 on simple, as the original's sample was made."""
    (tmp_path / "cfg.json").write_text(json.dumps(CONFIG))
    done = run_cli(
        "simple",
        WC,
        "-i",
        "3",
        "--provenance-config",
        "cfg.json",
        "--provenance-path",
        "provout",
        "--provenance-bulk-size",
        "1",
        "--provenance-userid",
        "ana",
        "--provenance-runid",
        "r-1",
    )
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'WordCounter1': {'output': [[" in done.stdout
    return tmp_path / "provout"


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_records_have_the_original_shape(recorded) -> None:
    files = bulk(recorded)
    assert len(files) == 7 and all(len(f) == 1 for f in files)  # bulk size 1: a file per record
    records = [r for f in files for r in f]
    sample = json.loads(SAMPLE.read_text()) if SAMPLE.exists() else None
    (run,) = [r for r in records if r["type"] == "workflow_run"]
    lineage = [r for r in records if r["type"] == "lineage"]
    assert (
        run["runId"] == "r-1" and run["username"] == "ana" and run["workflowId"] == "urn:workflow:word_count"
    )
    assert {"RandomWordProducer0", "WordCounter1"} == set(run["source"])
    assert len(lineage) == 6 and {r["runId"] for r in lineage} == {"r-1"}
    if sample is not None:  # every field of the original's records, with the same JSON types
        expected = _shape(sample[1])
        for record in lineage:
            shape = _shape(record)
            for key, kind in expected.items():
                if key != "derivationIds":
                    assert shape[key] == kind, key
        assert set(sample[0]) - {"modules"} <= set(run)
    ids = {s["id"]: r for r in lineage for s in r["streams"]}
    for counted in (r for r in lineage if r["name"] == "WordCounter"):
        (derivation,) = counted["derivationIds"]
        source = ids[derivation["DerivedFromDatasetID"]]
        assert source["name"] == "RandomWordProducer"
        assert derivation["TriggeredByProcessIterationID"] == source["iterationId"]
        assert derivation["prov_cluster"] == "RandomWordProducer0" and derivation["port"] == "input"


def test_off_by_default(run_cli, tmp_path) -> None:
    done = run_cli("simple", WC, "-i", "3")
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.rglob("bulk_*"))


@pytest.mark.parametrize(
    ("config", "flags", "message"),
    [
        ("{not json", [], "cfg.json: not valid JSON"),
        ('{"s-prov:save-mode": "disk"}', [], "'s-prov:save-mode': unknown save mode 'disk'"),
        ('{"s-prov:save-mode": "service"}', [], "needs the repository's URL: --provenance-repository-url"),
        ('{"s-prov:saveMode": "file"}', [], "unknown key 's-prov:saveMode'"),
        ("{}", [], "needs a folder: --provenance-path"),
        ("{}", ["--provenance-path", "afile/sub"], "--provenance-path afile/sub: cannot write"),
        (
            "{}",
            ["--provenance-path", "p", "--provenance-bulk-size", "0"],
            "--provenance-bulk-size must be at least 1",
        ),
        (
            "{}",
            ["--provenance-path", "p", "--provenance-bulk-size", "x"],
            "--provenance-bulk-size must be a whole",
        ),
        (
            '{"s-prov:componentsType": {"WordCounter": {"s-prov:type": ["NoSuchFlow"]}}}',
            ["--provenance-path", "p"],
            "'s-prov:type' 'NoSuchFlow' is not a provenance type",
        ),
    ],
)
def test_bad_configuration_is_a_usage_error_before_anything_runs(run_cli, tmp_path, config, flags, message):
    (tmp_path / "cfg.json").write_text(config)
    (tmp_path / "afile").write_text("")
    done = run_cli("simple", WC, "-i", "3", "--provenance-config", "cfg.json", *flags)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Outputs:" not in done.stdout and not list(tmp_path.rglob("bulk_*"))


def test_a_missing_config_file_names_it(run_cli) -> None:
    done = run_cli("simple", WC, "--provenance-config", "nope.json", "--provenance-path", "p")
    assert done.returncode == 2 and "--provenance-config nope.json: cannot read the file" in done.stderr


def test_trace_from_a_result_back_to_its_source(run_cli, recorded) -> None:
    done = run_cli("prov", "trace", recorded, "WordCounter1:output:0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("WordCounter1:output  id ")
    assert lines[1].startswith("  <- input: RandomWordProducer0:output  id ") and lines[1].endswith(
        "[source]"
    )
    assert lines[-1].startswith("1 source item(s): RandomWordProducer0:output ")
    by_id = run_cli("prov", "trace", recorded, lines[1].split("id ")[1].split()[0])
    assert by_id.returncode == 0 and "[source]" in by_id.stdout.splitlines()[0]
    for target, message in (
        ("WordCounter1:output:9", "wrote 3 item(s)"),
        ("Nope:output:0", "no item written"),
    ):
        bad = run_cli("prov", "trace", recorded, target)
        assert bad.returncode == 2 and message in bad.stderr


@pytest.mark.parametrize("fmt", ["provn", "json", "jsonld", "xml", "ttl", "svg"])
def test_export_as_w3c_prov(run_cli, recorded, fmt, tmp_path) -> None:
    pytest.importorskip("prov")
    out = tmp_path / f"run.{fmt}"
    done = run_cli("prov", "export", recorded, "--format", fmt, "-o", out)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "WordCounter" in text
    if fmt == "json":
        doc = json.loads(text)
        assert len(doc["entity"]) == 6 and len(doc["wasDerivedFrom"]) == 3
    elif fmt == "provn":
        assert text.startswith("document") and text.count("wasDerivedFrom(") == 3
    elif fmt == "svg":
        assert text.lstrip().startswith("<") and "<svg" in text


def test_export_of_a_folder_without_records(run_cli, tmp_path) -> None:
    done = run_cli("prov", "export", tmp_path, "--format", "json")
    assert done.returncode == 2 and "no provenance records (bulk_* files)" in done.stderr
