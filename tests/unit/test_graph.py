"""WorkflowGraph: connect/add, ids, the networkx view, composites and flatten(), draw()."""

from __future__ import annotations

import itertools
import re

import networkx as nx
import pytest

from dispel4py.base import CompositePE, ProducerPE, create_iterative_chain
from dispel4py.core import GenericPE
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph, WorkflowNode, draw

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_ids")]


def add_one(x):
    return x + 1


def times(x, k):
    return x * k


def ids_of(graph: WorkflowGraph) -> list[str]:
    return [n.obj.id for n in graph.nodes]


def id_connections(graph: WorkflowGraph) -> set[tuple[str, str, str, str]]:
    return {(s.id, o, d.id, i) for s, o, d, i in graph.connections}


# -- building and ids ------------------------------------------------------------------
def test_connect_adds_both_pes_and_assigns_ids_in_insertion_order():
    graph = WorkflowGraph()
    prod, a, b = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(prod, "output", a, "input")
    graph.connect(a, "output", b, "input")
    assert ids_of(graph) == ["TestProducer0", "TestOneInOneOut1", "TestOneInOneOut2"]
    assert (prod.id, a.id, b.id) == ("TestProducer0", "TestOneInOneOut1", "TestOneInOneOut2")
    assert WorkflowNode.node_counter == 3


def test_id_before_joining_a_graph_is_name_plus_uuid():
    pe = t.TestOneInOneOut()
    assert pe.id.startswith("TestOneInOneOut")
    assert pe.id != "TestOneInOneOut"
    assert WorkflowNode.node_counter == 0


def test_id_uses_a_user_given_name():
    graph = WorkflowGraph()
    pe = t.TestProducer()
    pe.name = "read"
    graph.add(pe)
    assert pe.id == "read0"


def test_counter_is_global_across_graphs():
    g1, g2 = WorkflowGraph(), WorkflowGraph()
    g1.add(t.TestProducer())
    pe = t.TestProducer()
    g2.add(pe)
    assert pe.id == "TestProducer1"


def test_add_returns_the_node_and_adding_twice_keeps_id():
    graph = WorkflowGraph()
    pe = t.TestProducer()
    node = graph.add(pe)
    assert isinstance(node, WorkflowNode)
    assert node.get_contained_object() is pe
    assert node.nodeType == WorkflowNode.WORKFLOW_NODE_PE
    assert graph.add(pe) is node
    graph.connect(pe, "output", t.TestOneInOneOut(), "input")
    assert pe.id == "TestProducer0"
    assert len(graph.nodes) == 2
    assert graph.objToNode[pe] is node


def test_node_lists_one_dict_per_declared_port():
    node = WorkflowGraph().add(t.TestTwoInOneOut())
    assert node.inputs == [{}, {}]
    assert node.outputs == [{}]


def test_adding_something_that_is_not_a_pe_raises_type_error():
    with pytest.raises(TypeError, match="Cannot add"):
        WorkflowGraph().add("not a PE")


def test_get_contained_objects_sorted_by_id():
    graph = WorkflowGraph()
    pes = [t.TestOneInOneOut() for _ in range(12)]
    for a, b in itertools.pairwise(pes):
        graph.connect(a, "output", b, "input")
    objs = graph.get_contained_objects()
    assert [o.id for o in objs] == sorted(p.id for p in pes)
    assert {id(o) for o in objs} == {id(p) for p in pes}


# -- networkx view -----------------------------------------------------------------------
def test_graph_attribute_is_a_networkx_graph_of_workflow_nodes():
    graph = WorkflowGraph()
    prod, cons = t.TestProducer(), t.TestOneInOneOut()
    graph.connect(prod, "output", cons, "input")
    view = graph.graph
    assert isinstance(view, nx.Graph)
    nodes = list(view.nodes())
    assert all(isinstance(n, WorkflowNode) for n in nodes)
    assert [n.get_contained_object() for n in nodes] == [prod, cons]
    (_a, _b, data) = next(iter(view.edges(data=True)))
    assert data["DIRECTION"] == (prod, cons)
    assert data["ALL_CONNECTIONS"] == [("output", "input")]
    assert data["FROM_CONNECTION"] == "output"
    assert data["TO_CONNECTION"] == "input"


def test_view_neighbours_and_direction_like_the_original():
    """User code (optimization/stage.py style) walks graph.graph[node] and DIRECTION."""
    graph = WorkflowGraph()
    prod, a, b = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(prod, "output", a, "input")
    graph.connect(a, "output", b, "input")
    node_a = graph.objToNode[a]
    directions = {edge["DIRECTION"] for edge in graph.graph[node_a].values()}
    assert directions == {(prod, a), (a, b)}


def test_second_connection_between_same_pair_is_appended_to_all_connections():
    graph = WorkflowGraph()
    prod, last = t.TestProducer(2), t.TestTwoInOneOut()
    graph.connect(prod, "output0", last, "input0")
    graph.connect(prod, "output1", last, "input1")
    edges = list(graph.graph.edges(data=True))
    assert len(edges) == 1
    assert edges[0][2]["ALL_CONNECTIONS"] == [("output0", "input0"), ("output1", "input1")]
    assert len(graph.connections) == 2


def test_view_is_rebuilt_after_more_connections():
    graph = WorkflowGraph()
    prod, a, b = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(prod, "output", a, "input")
    assert graph.graph.number_of_edges() == 1
    graph.connect(a, "output", b, "input")
    assert graph.graph.number_of_edges() == 2
    assert graph.graph.number_of_nodes() == 3


def test_reverse_connection_is_kept_in_both_directions():
    """Original bug B20: B->A after A->B was recorded as A->B. Here both are kept."""
    graph = WorkflowGraph()
    a, b = t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(a, "output", b, "input")
    graph.connect(b, "output", a, "input")
    assert graph.connections == [(a, "output", b, "input"), (b, "output", a, "input")]


# -- composites and flatten ----------------------------------------------------------------
def test_create_iterative_chain_builds_a_composite():
    chain = create_iterative_chain([add_one, (times, {"k": 3})])
    first, second = (n.obj for n in chain.nodes)
    assert (first.id, second.id) == ("PE_add_one0", "PE_times1")
    assert first.compute_fn is add_one and second.params == {"k": 3}
    assert chain.inputmappings == {"input": (first, "input")}
    assert chain.outputmappings == {"output": (second, "output")}
    assert chain.connections == [(first, "output", second, "input")]


def test_create_iterative_chain_prefix_suffix_and_class():
    class MyPE(t.SquareIterative):
        pass

    chain = create_iterative_chain([add_one], function_pe_class=MyPE, name_prefix="X_", name_suffix="_y")
    (pe,) = (n.obj for n in chain.nodes)
    assert isinstance(pe, MyPE)
    assert pe.name == "X_add_one_y"
    assert pe.id == "X_add_one_y0"


def test_flatten_iterative_chain_keeps_ids_and_reroutes_edges():
    chain = create_iterative_chain([add_one, (times, {"k": 3})])
    prod, sink = t.TestProducer(), t.TestOneInOneOut()
    graph = WorkflowGraph()
    graph.connect(prod, "output", chain, "input")
    graph.connect(chain, "output", sink, "input")
    graph.flatten()
    assert sorted(ids_of(graph)) == sorted(["PE_add_one0", "PE_times1", "TestProducer2", "TestOneInOneOut3"])
    assert id_connections(graph) == {
        ("TestProducer2", "output", "PE_add_one0", "input"),
        ("PE_add_one0", "output", "PE_times1", "input"),
        ("PE_times1", "output", "TestOneInOneOut3", "input"),
    }
    assert all(n.nodeType == WorkflowNode.WORKFLOW_NODE_PE for n in graph.nodes)
    assert all(isinstance(n.get_contained_object(), GenericPE) for n in graph.graph.nodes())


def _two_stage(composite: CompositePE, label: str) -> None:
    first, second = t.TestOneInOneOut(), t.TestOneInOneOutWriter()
    first.name, second.name = f"{label}_a", f"{label}_b"
    composite.connect(first, "output", second, "input")
    composite._map_input("in", first, "input")
    composite._map_output("out", second, "output")


def test_composite_pe_mappings_and_flatten():
    composite = CompositePE(_two_stage, {"label": "stage"})
    inner_a, inner_b = (n.obj for n in composite.nodes)
    assert composite.inputmappings == {"in": (inner_a, "input")}
    assert composite.outputmappings == {"out": (inner_b, "output")}
    prod, sink = t.TestProducer(), t.TestOneInOneOut()
    graph = WorkflowGraph()
    graph.connect(prod, "output", composite, "in")
    graph.connect(composite, "out", sink, "input")
    graph.flatten()
    assert (inner_a.id, inner_b.id) == ("stage_a0", "stage_b1")
    assert id_connections(graph) == {
        ("TestProducer2", "output", "stage_a0", "input"),
        ("stage_a0", "output", "stage_b1", "input"),
        ("stage_b1", "output", "TestOneInOneOut3", "input"),
    }


def test_flatten_nested_composites():
    inner = create_iterative_chain([add_one])

    def outer_graph(composite):
        pre = t.TestOneInOneOut()
        composite.connect(pre, "output", inner, "input")
        composite._map_input("input", pre, "input")
        composite._map_output("output", inner, "output")

    outer = CompositePE(outer_graph)
    prod = t.TestProducer()
    graph = WorkflowGraph()
    graph.connect(prod, "output", outer, "input")
    graph.flatten()
    assert all(n.nodeType == WorkflowNode.WORKFLOW_NODE_PE for n in graph.nodes)
    assert id_connections(graph) == {
        ("TestProducer2", "output", "TestOneInOneOut1", "input"),
        ("TestOneInOneOut1", "output", "PE_add_one0", "input"),
    }


def test_flatten_twice_is_harmless():
    chain = create_iterative_chain([add_one])
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", chain, "input")
    graph.flatten()
    before = id_connections(graph), ids_of(graph)
    graph.flatten()
    assert (id_connections(graph), ids_of(graph)) == before


def test_composite_node_type():
    chain = create_iterative_chain([add_one])
    node = WorkflowGraph().add(chain)
    assert node.nodeType == WorkflowNode.WORKFLOW_NODE_CP
    assert node.get_contained_object() is chain


# -- drawing -----------------------------------------------------------------------------
_EDGE = re.compile(r"^(\w+):out_(\w+)->(\w+):in_(\w+);$")
_NODE = re.compile(r'^(\w+)\s*\[label="(.*)"\];?$')


def _strip_quoted(dot: str) -> str:
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', dot)


def _check_dot(dot: str) -> tuple[dict[str, str], list[tuple[str, str, str, str]]]:
    """Basic validity: braces balance outside strings; every edge port is declared on its node."""
    assert dot.lstrip().startswith("digraph")
    bare = _strip_quoted(dot)
    assert bare.count("{") == bare.count("}")
    assert "{0" not in bare
    nodes, edges = {}, []
    for line in (x.strip() for x in dot.splitlines()):
        if m := _EDGE.match(line):
            edges.append(m.groups())
        elif m := _NODE.match(line):
            nodes[m.group(1)] = m.group(2)
    for src, out, dst, inp in edges:
        assert src in nodes, f"edge from undeclared node {src}"
        assert dst in nodes, f"edge to undeclared node {dst}"
        assert f"<out_{out}>" in nodes[src], f"{src} has no port out_{out}"
        assert f"<in_{inp}>" in nodes[dst], f"{dst} has no port in_{inp}"
    return nodes, edges


def test_draw_pipeline():
    graph = WorkflowGraph()
    prod, cons = t.TestProducer(), t.TestOneInOneOut()
    graph.connect(prod, "output", cons, "input")
    dot = draw(graph)
    nodes, edges = _check_dot(dot)
    assert "digraph request" in dot
    assert "shape=Mrecord" in dot
    assert "TestProducer00:out_output->TestOneInOneOut11:in_input;" in dot.splitlines()
    assert len(nodes) == 2
    assert edges == [("TestProducer00", "output", "TestOneInOneOut11", "input")]


def test_draw_multi_port_graph():
    graph = WorkflowGraph()
    prod, a, b, last = t.TestProducer(2), t.TestOneInOneOut(), t.TestOneInOneOutWriter(), t.TestTwoInOneOut()
    graph.connect(prod, "output0", a, "input")
    graph.connect(prod, "output1", b, "input")
    graph.connect(a, "output", last, "input0")
    graph.connect(b, "output", last, "input1")
    _, edges = _check_dot(draw(graph))
    assert {(e[1], e[3]) for e in edges} == {
        ("output0", "input"),
        ("output1", "input"),
        ("output", "input0"),
        ("output", "input1"),
    }


def test_draw_flattened_composite():
    chain = create_iterative_chain([add_one, (times, {"k": 2})])
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", chain, "input")
    graph.flatten()
    _, edges = _check_dot(draw(graph))
    assert len(edges) == 2


def test_draw_unflattened_composite_is_valid_dot():
    """Original bug B21 emitted 'subgraph cluster_%s {0'. Edges into a composite must go to
    the PE inside it (as the original intended), on a port that PE's node declares."""
    chain = create_iterative_chain([add_one, (times, {"k": 2})])
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", chain, "input")
    dot = draw(graph)
    assert "subgraph cluster" in dot
    _nodes, edges = _check_dot(dot)
    assert len(edges) >= 1
    assert any(src.startswith("TestProducer2") and dst.startswith("PE_add_one0") for src, _, dst, _ in edges)


def test_draw_producer_without_inputs():
    graph = WorkflowGraph()
    graph.add(ProducerPE())
    nodes, edges = _check_dot(draw(graph))
    assert edges == []
    assert list(nodes) == ["ProducerPE00"]
