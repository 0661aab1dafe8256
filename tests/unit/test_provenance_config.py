"""Provenance configuration (``dispel4py.run(..., provenance=...)``) and the hook's cost
when off: what is checked before a run, and that a run without provenance keeps the
engine's own writers."""

from __future__ import annotations

import re

import pytest

import dispel4py
from dispel4py.base import IterativePE, ProducerPE
from dispel4py.engine.executor import Executor
from dispel4py.engine.plan import make_plan
from dispel4py.engine.tuning import Tuning
from dispel4py.engine.writers import LocalWriter
from dispel4py.errors import UsageError
from dispel4py.mappings.base import ResultCollector
from dispel4py.provenance import ProvenanceConfig, asked, configure_prov_run, recording_for
from dispel4py.provenance.config import config_from_sources
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(30)


class Source(ProducerPE):
    def _process(self, inputs):
        return 1


class Same(IterativePE):
    def _process(self, x):
        return x


def graph() -> WorkflowGraph:
    g = WorkflowGraph()
    g.connect(Source(), "output", Same(), "input")
    return g


def test_off_unless_asked(tmp_path) -> None:
    g = graph()
    assert recording_for(None, g, "simple") is None
    configure_prov_run(g, sprovConfig={"s-prov:run-id": "r"})
    assert recording_for(False, g, "simple") is None  # False wins over the workflow's config
    on = recording_for({"path": str(tmp_path)}, g, "multi")
    assert on is not None and on.run_id == "r" and on.mapping == "multi" and on.config.path == str(tmp_path)


def test_asked_is_the_one_test_of_on_and_off() -> None:
    """``dispel4py.provenance.asked``: what the API, the CLI and ``recording_for`` decide by."""
    g = graph()
    assert not asked(None, g) and asked(True, g) and asked({"path": "x"}, g) and not asked(False, g)
    configure_prov_run(g)
    assert asked(None, g) and not asked(False, g)


def test_the_writer_process_can_be_turned_off(tmp_path) -> None:
    on = recording_for({"path": str(tmp_path), "writer_process": False}, graph(), "simple")
    assert on is not None and on.config.writer_process is False
    assert recording_for({"path": str(tmp_path)}, graph(), "simple").config.writer_process is True


def test_off_keeps_the_engines_own_writers() -> None:
    g = graph()
    plan = make_plan(g, None, 1)
    assert Tuning().recorder is None
    executor = Executor(plan, 0, None, ResultCollector())
    source = plan.instances[next(iter(plan.pes))][0]
    assert isinstance(executor.writers[source]["output"], LocalWriter)  # the fast path
    assert executor.recorder is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (42, "provenance= takes True, False, a config file's path"),
        ({"s-prov:save-mode": "service"}, "needs the repository's URL"),
        ({"s-prov:save-mode": "sensor", "path": "x"}, "unknown save mode 'sensor'"),
        ({"s-prov:nope": 1, "path": "x"}, "unknown key 's-prov:nope'"),
        ({"path": "x", "bulk_size": 0}, "--provenance-bulk-size must be at least 1"),
        ({"path": "x", "s-prov:sel-rules": []}, "'s-prov:sel-rules' must be an object"),
        (
            {"path": "x", "s-prov:componentsType": {"Same": {"s-prov:type": [3]}}},
            "lists 3, not a provenance type",
        ),
    ],
)
def test_bad_configuration_names_the_key(spec, message, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=re.escape(message)):
        dispel4py.run(graph(), provenance=spec)
    assert not list(tmp_path.rglob("bulk_*"))


def test_a_provenance_config_object_and_the_flags_override_the_file(tmp_path) -> None:
    path = tmp_path / "cfg.json"
    path.write_text('{"s-prov:run-id": "from-file", "provone:User": "ana"}')
    config = config_from_sources(
        {"s-prov:run-id": "inline"}, str(path), {"run_id": "flag", "path": str(tmp_path)}
    )
    assert (config.run_id, config.user) == ("flag", "ana")
    result = dispel4py.run(graph(), provenance=ProvenanceConfig(path=str(tmp_path / "p"), run_id="obj"))
    assert [v for out in result.outputs.values() for v in out["output"]] == [1]
    assert list((tmp_path / "p").glob("bulk_*"))
