"""Finding the workflow graph in a module or file; dispel4py.utils helpers."""

from __future__ import annotations

import logging
import sys
import textwrap
import uuid

import pytest

from dispel4py import utils
from dispel4py.engine.loading import find_graph, load_module, load_workflow
from dispel4py.errors import GraphError
from dispel4py.workflow_graph import WorkflowGraph, WorkflowNode

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_ids")]

PIPELINE = """
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

prod = t.TestProducer()
cons = t.TestOneInOneOut()
{name} = WorkflowGraph()
{name}.connect(prod, "output", cons, "input")
"""


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path):
    """Workflow files register modules and extend sys.path; undo both."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write(tmp_path, source: str, name: str | None = None) -> tuple[str, str]:
    """Write a workflow module with a unique name; return (module name, file path)."""
    module = name or f"wf_{uuid.uuid4().hex[:12]}"
    path = tmp_path / f"{module}.py"
    path.write_text(textwrap.dedent(source))
    return module, str(path)


def pe_ids(graph: WorkflowGraph) -> list[str]:
    return [n.obj.id for n in graph.nodes]


def test_load_from_module_name(tmp_path, monkeypatch):
    module, _ = write(tmp_path, PIPELINE.format(name="graph"))
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = load_workflow(module)
    assert isinstance(graph, WorkflowGraph)
    assert pe_ids(graph) == ["TestProducer0", "TestOneInOneOut1"]


def test_load_example_module():
    graph = load_workflow("dispel4py.examples.graph_testing.teecopy")
    assert len(graph.nodes) == 3


def test_load_from_file_path_from_another_directory(tmp_path, monkeypatch):
    _, path = write(tmp_path, PIPELINE.format(name="workflow"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    graph = load_workflow(path)
    assert pe_ids(graph) == ["TestProducer0", "TestOneInOneOut1"]


def test_load_from_relative_file_path(tmp_path, monkeypatch):
    module, _ = write(tmp_path, PIPELINE.format(name="graph"))
    monkeypatch.chdir(tmp_path)
    assert len(load_workflow(f"{module}.py").nodes) == 2


def test_workflow_file_can_import_a_sibling_module(tmp_path):
    helper, _ = write(tmp_path, "FACTOR = 3\n")
    _, path = write(
        tmp_path,
        f"""
        from {helper} import FACTOR
        from dispel4py.base import ProducerPE
        from dispel4py.workflow_graph import WorkflowGraph
        graph = WorkflowGraph()
        pe = ProducerPE()
        pe.factor = FACTOR
        graph.add(pe)
        """,
    )
    graph = load_workflow(path)
    assert graph.nodes[0].obj.factor == 3


def test_attr_chooses_the_graph(tmp_path):
    _, path = write(
        tmp_path,
        PIPELINE.format(name="first")
        + """
second = WorkflowGraph()
second.add(t.TestProducer())
""",
    )
    assert pe_ids(load_workflow(path, "second")) == ["TestProducer2"]
    assert len(load_workflow(path, "first").nodes) == 2


def test_attr_naming_nothing(tmp_path):
    _, path = write(tmp_path, PIPELINE.format(name="graph"))
    with pytest.raises(GraphError) as info:
        load_workflow(path, "grahp")
    message = str(info.value)
    assert "grahp" in message and "graph" in message


def test_attr_naming_something_that_is_not_a_graph(tmp_path):
    _, path = write(tmp_path, PIPELINE.format(name="graph"))
    with pytest.raises(GraphError, match="prod"):
        load_workflow(path, "prod")


def test_no_graph(tmp_path):
    _, path = write(tmp_path, "x = 1\n")
    with pytest.raises(GraphError, match="no WorkflowGraph"):
        load_workflow(path)


def test_several_graphs_without_attr_lists_them(tmp_path):
    _, path = write(
        tmp_path,
        PIPELINE.format(name="beta")
        + """
alpha = WorkflowGraph()
alpha.add(t.TestProducer())
""",
    )
    with pytest.raises(GraphError) as info:
        load_workflow(path)
    message = str(info.value)
    assert "alpha" in message and "beta" in message
    assert "-a" in message


def test_one_graph_under_two_names_is_one_graph(tmp_path):
    _, path = write(tmp_path, PIPELINE.format(name="graph") + "alias = graph\n")
    assert len(load_workflow(path).nodes) == 2


def test_composites_are_not_candidates(tmp_path):
    _, path = write(
        tmp_path,
        """
        from dispel4py.base import CompositePE, create_iterative_chain
        from dispel4py.examples.graph_testing import testing_PEs as t
        from dispel4py.workflow_graph import WorkflowGraph

        def inc(x):
            return x + 1

        chain = create_iterative_chain([inc])

        def build(cp):
            a = t.TestOneInOneOut()
            cp.add(a)
            cp._map_input("input", a, "input")
            cp._map_output("output", a, "output")

        comp = CompositePE(build)
        graph = WorkflowGraph()
        prod = t.TestProducer()
        graph.connect(prod, "output", chain, "input")
        graph.connect(chain, "output", comp, "input")
        """,
    )
    graph = load_workflow(path)
    assert set(pe_ids(graph)) == {"TestProducer2", "PE_inc0", "TestOneInOneOut1"}


def test_load_workflow_flattens(tmp_path):
    _, path = write(
        tmp_path,
        """
        from dispel4py.base import create_iterative_chain
        from dispel4py.examples.graph_testing import testing_PEs as t
        from dispel4py.workflow_graph import WorkflowGraph

        def inc(x):
            return x + 1

        graph = WorkflowGraph()
        graph.connect(t.TestProducer(), "output", create_iterative_chain([inc]), "input")
        """,
    )
    graph = load_workflow(path)
    assert all(n.nodeType == WorkflowNode.WORKFLOW_NODE_PE for n in graph.nodes)


def test_missing_module():
    with pytest.raises(GraphError, match="not found"):
        load_workflow("no_such_package_d4py.workflow")


def test_missing_file(tmp_path):
    with pytest.raises(GraphError) as info:
        load_workflow(str(tmp_path / "missing.py"))
    assert "missing.py" in str(info.value)
    assert "not exist" in str(info.value) or "not found" in str(info.value)


def test_exception_in_workflow_module_is_reported(tmp_path):
    _, path = write(
        tmp_path,
        """
        def build():
            raise RuntimeError("the user's own error")

        graph = build()
        """,
    )
    with pytest.raises(GraphError) as info:
        load_workflow(path)
    message = str(info.value)
    assert "RuntimeError: the user's own error" in message
    assert path in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_import_error_inside_workflow_module_names_the_missing_module(tmp_path, monkeypatch):
    module, _ = write(tmp_path, "import no_such_dependency_d4py\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(GraphError) as info:
        load_workflow(module)
    assert "no_such_dependency_d4py" in str(info.value)


def test_load_module_and_find_graph(tmp_path):
    _, path = write(tmp_path, PIPELINE.format(name="graph"))
    module = load_module(path)
    assert find_graph(module, path) is module.graph


# -- dispel4py.utils ----------------------------------------------------------------------------
def test_utils_load_graph(tmp_path):
    _, path = write(tmp_path, PIPELINE.format(name="graph"))
    graph = utils.load_graph(path)
    assert isinstance(graph, WorkflowGraph)
    assert len(graph.nodes) == 2


def test_utils_load_graph_returns_none_on_failure(tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="dispel4py")
    assert utils.load_graph(str(tmp_path / "missing.py")) is None
    assert any("missing.py" in r.getMessage() for r in caplog.records)
    _, path = write(tmp_path, "x = 1\n")
    assert utils.load_graph(path) is None
    assert utils.load_graph("no_such_package_d4py") is None


def test_utils_compat_aliases(tmp_path):
    module, path = write(tmp_path, PIPELINE.format(name="graph"))
    assert len(utils.loadGraph(path).nodes) == 2
    assert len(utils.loadGraphFromFile(module, path).nodes) == 2
    mod = load_module(path)
    assert utils.findWorkflowGraph(mod) is mod.graph
    assert utils.findWorkflowGraph(mod, "graph") is mod.graph


def test_make_hash():
    assert utils.make_hash((1, "a")) == utils.make_hash((1, "a"))
    assert utils.make_hash([1, "a"]) == utils.make_hash((1, "a"))
    assert utils.make_hash({"a": 1, "b": [1, 2]}) == utils.make_hash({"b": [1, 2], "a": 1})
    assert utils.make_hash({"a": 1}) != utils.make_hash({"a": 2})
    assert isinstance(utils.make_hash({1, 2, 3}), int)
    assert utils.make_hash(5) == hash(5)


def test_make_hash_does_not_modify_its_argument():
    value = {"a": [1, 2], "b": {"c": 3}}
    utils.make_hash(value)
    assert value == {"a": [1, 2], "b": {"c": 3}}


def test_total_size():
    small = utils.total_size([])
    big = utils.total_size([list(range(100)), {"k": "v" * 1000}])
    assert small == sys.getsizeof([])
    assert big > sys.getsizeof([]) + 1000
    shared = [1, 2, 3]
    assert utils.total_size([shared, shared]) < 2 * utils.total_size(shared) + sys.getsizeof([1, 2])
    assert utils.total_size({"a": (1, 2)}) > sys.getsizeof({"a": (1, 2)})
