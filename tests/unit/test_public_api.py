"""The public surface: __all__ is honest, the original import paths exist, imports stay light."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import dispel4py

pytestmark = pytest.mark.timeout(60)

PUBLIC_MODULES = [
    "dispel4py.core",
    "dispel4py.base",
    "dispel4py.workflow_graph",
    "dispel4py.utils",
    "dispel4py.errors",
    "dispel4py.engine.routing",
]


def test_package_all_resolves():
    assert dispel4py.__all__
    for name in dispel4py.__all__:
        assert getattr(dispel4py, name) is not None, name
    assert sorted(dir(dispel4py)) == sorted(dispel4py.__all__)


def test_package_unknown_attribute():
    with pytest.raises(AttributeError, match="no_such_name"):
        dispel4py.no_such_name  # noqa: B018


def test_version_string():
    assert isinstance(dispel4py.__version__, str)
    assert dispel4py.__version__[0].isdigit()


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_module_all_names_exist(module_name):
    module = importlib.import_module(module_name)
    assert module.__all__, module_name
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


def test_error_hierarchy():
    from dispel4py.errors import (
        Dispel4PyError,
        GraphError,
        InputError,
        MappingUnavailable,
        TransportError,
        UsageError,
        WorkerDied,
        WorkflowFailed,
    )

    for cls in (
        UsageError,
        GraphError,
        InputError,
        MappingUnavailable,
        TransportError,
        WorkflowFailed,
        WorkerDied,
    ):
        assert issubclass(cls, Dispel4PyError)
    for cls in (GraphError, InputError, MappingUnavailable):
        assert issubclass(cls, UsageError)
        assert cls.exit_code == 2
    assert WorkflowFailed.exit_code == 1
    assert TransportError.exit_code == 1


def test_workflow_failed_pickles_with_its_fields():
    import pickle

    from dispel4py.errors import WorkflowFailed

    err = WorkflowFailed("P1", 3, "process", "input", "'x'", "ValueError: no", "Traceback...", "worker 2")
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.pe_id, clone.instance, clone.phase, clone.port, clone.item_repr) == (
        "P1",
        3,
        "process",
        "input",
        "'x'",
    )
    assert clone.user_traceback == "Traceback..."
    assert str(clone) == str(err)


def test_original_import_paths():
    from dispel4py.base import (  # noqa: F401
        NAME,
        BasePE,
        CompositePE,
        ConsumerPE,
        GenericPE,
        IterativePE,
        ProducerPE,
        SimpleFunctionPE,
        WorkflowGraph,
        create_iterative_chain,
    )
    from dispel4py.core import GROUPING, TYPE  # noqa: F401
    from dispel4py.core import NAME as CORE_NAME
    from dispel4py.core import GenericPE as CoreGenericPE
    from dispel4py.new.monitoring import ProcessTimingPE  # noqa: F401
    from dispel4py.new.processor import main
    from dispel4py.new.simple_process import process, process_and_return  # noqa: F401
    from dispel4py.utils import findWorkflowGraph, load_graph, loadGraph, make_hash, total_size  # noqa: F401
    from dispel4py.workflow_graph import WorkflowGraph as WG
    from dispel4py.workflow_graph import WorkflowNode, draw, drawDot, write_image  # noqa: F401

    assert GenericPE is CoreGenericPE
    assert NAME == CORE_NAME == "name"
    assert WorkflowGraph is WG
    assert issubclass(CompositePE, WG)
    assert callable(main)


def test_testing_pes_import_path():
    from dispel4py.examples.graph_testing import testing_PEs as t

    for name in ("TestProducer", "TestOneInOneOut", "TestTwoInOneOut", "WordCounter", "RandomWordProducer"):
        assert hasattr(t, name)


def test_original_mapping_config_table():
    from dispel4py.new.mappings import config

    assert config["simple"] == "dispel4py.new.simple_process"
    assert config["multi"] == "dispel4py.new.multi_process"
    assert config["mpi"] == "dispel4py.new.mpi_process"


def _modules_after(code: str) -> list[str]:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


HEAVY = {"networkx", "mpi4py", "zmq"}


def _heavy(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules} & HEAVY


def test_importing_dispel4py_and_cli_is_light():
    assert _heavy(_modules_after("import dispel4py, dispel4py.cli")) == set()


def test_importing_the_user_api_is_light():
    code = "import dispel4py.core, dispel4py.base, dispel4py.workflow_graph, dispel4py.utils"
    assert _heavy(_modules_after(code)) == set()


def test_import_has_no_logging_side_effects():
    code = (
        "import logging, dispel4py, dispel4py.cli, dispel4py.base\n"
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers\n"
        "assert logging.getLogger('dispel4py').handlers == []\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def test_a_library_run_does_not_configure_logging_or_print():
    code = (
        "import logging, dispel4py\n"
        "from dispel4py.examples.graph_testing import testing_PEs as t\n"
        "from dispel4py.workflow_graph import WorkflowGraph\n"
        "g = WorkflowGraph(); p = t.TestProducer()\n"
        "g.connect(p, 'output', t.TestOneInOneOut(), 'input')\n"
        "assert dispel4py.run(g, {p: 2}).outputs == {'TestOneInOneOut1': {'output': [1, 2]}}\n"
        "assert logging.getLogger().handlers == []\n"
        "assert logging.getLogger('dispel4py').handlers == []\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
