"""The mapping registry: lazy built-ins, plug-ins by entry point, clear errors."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from importlib.metadata import EntryPoint

import pytest

import dispel4py
import dispel4py.mappings as registry
from dispel4py.errors import MappingUnavailable
from dispel4py.mappings.simple import SimpleMapping

pytestmark = pytest.mark.timeout(30)


class EchoMapping(SimpleMapping):
    """A third-party mapping (the simple engine under another name)."""

    name = "echo"
    summary = "a plug-in for the test"


def test_missing_extra_says_what_to_install(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "zmq" else real(n, *a))
    with pytest.raises(MappingUnavailable, match=r"needs zmq: pip install 'dispel4py\[zmq\]'"):
        registry.get_mapping("zmq_multi")
    assert registry.mapping_status("zmq_multi") == "needs pip install 'dispel4py[zmq]'"
    assert ("zmq_multi", "needs pip install 'dispel4py[zmq]'") in [
        r[:2] for r in registry.available_mappings()
    ]


def test_a_module_that_fails_to_import_is_unavailable_not_a_traceback(monkeypatch) -> None:
    def broken(name: str, *args):
        raise ImportError("libzmq.so: cannot open shared object file")

    monkeypatch.setattr(registry.importlib, "import_module", broken)
    with pytest.raises(MappingUnavailable, match=r"cannot be loaded .*libzmq\.so"):
        registry.get_mapping("zmq_multi")


def test_not_yet_built_mappings_are_listed_and_refused(monkeypatch) -> None:
    planned = registry.MappingInfo("spark", None, "Apache Spark (planned)")
    monkeypatch.setitem(registry.BUILTIN, "spark", planned)
    assert registry.mapping_status("spark") == "not yet available"
    with pytest.raises(MappingUnavailable, match="'spark' is not yet available"):
        registry.get_mapping("spark")


def test_every_built_in_mapping_is_available_here() -> None:
    assert {name: registry.mapping_status(name) for name in registry.BUILTIN} == dict.fromkeys(
        registry.BUILTIN, "available"
    )


def test_original_module_paths_resolve_to_mappings() -> None:
    assert registry.get_mapping("dispel4py.new.simple_process") is SimpleMapping
    assert registry.get_mapping("dispel4py.new.multi_process").name == "multi"


def test_plugins_come_from_the_entry_point_group(monkeypatch) -> None:
    plugin = EntryPoint(name="echo", value=f"{__name__}:EchoMapping", group="dispel4py.mappings")
    monkeypatch.setattr(  # read when plug-ins are looked up (not at import: it costs every command)
        importlib.metadata, "entry_points", lambda group: [plugin] if group == "dispel4py.mappings" else []
    )
    assert registry.get_mapping("echo") is EchoMapping
    assert ("echo", "available (plug-in)") in [r[:2] for r in registry.available_mappings()]
    from dispel4py.examples.graph_testing import testing_PEs as t
    from dispel4py.workflow_graph import WorkflowGraph

    graph = WorkflowGraph()
    producer, copy = t.TestProducer(), t.TestOneInOneOut()
    graph.connect(producer, "output", copy, "input")
    result = dispel4py.run(graph, {producer: 3}, mapping="echo")
    assert result.outputs == {copy.id: {"output": [1, 2, 3]}}


def test_unknown_mapping_lists_the_valid_ones() -> None:
    with pytest.raises(MappingUnavailable, match=r"unknown mapping 'mutli' \(did you mean 'multi'\?\)"):
        registry.get_mapping("mutli")


def test_unknown_library_option_is_a_clear_error() -> None:
    from dispel4py.examples.graph_testing.pipeline_test import graph

    with pytest.raises(dispel4py.UsageError, match="mapping 'multi' has no option 'workers'"):
        dispel4py.run(graph, None, "multi", workers=2)
