"""Drawings: the abstract and concrete models, DOT (valid, composites as clusters), Mermaid,
our own SVG layout (no Graphviz needed), PNG only through Graphviz, and the original's
draw/drawDot/write_image."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from dispel4py import drawing
from dispel4py.base import create_iterative_chain
from dispel4py.cli.draw import concrete_plan
from dispel4py.drawing.svg import to_svg
from dispel4py.engine.plan import make_plan
from dispel4py.errors import MappingUnavailable, UsageError
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.mappings import get_mapping
from dispel4py.observe.concrete import communication, concrete_drawing, concrete_edges
from dispel4py.workflow_graph import WorkflowGraph, abstract_drawing, draw, drawDot, write_image

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_ids")]

SVG = "{http://www.w3.org/2000/svg}"


def add_one(x):
    return x + 1


def times(x, k):
    return x * k


def pipeline() -> WorkflowGraph:
    graph = WorkflowGraph()
    prod, a, b = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(prod, "output", a, "input")
    graph.connect(a, "output", b, "input")
    return graph


def nested_composite() -> WorkflowGraph:
    """producer -> outer composite [ chain(add_one, times) -> TestOneInOneOut ] -> sink."""
    inner = create_iterative_chain([add_one, (times, {"k": 2})])
    outer = WorkflowGraph()
    last = t.TestOneInOneOut()
    outer.connect(inner, "output", last, "input")
    outer.inputmappings = {"input": (inner, "input")}
    outer.outputmappings = {"output": (last, "output")}
    outer.name = 'outer "box"'
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", outer, "input")
    graph.connect(outer, "output", t.TestOneInOneOut(), "input")
    return graph


def split_merge() -> WorkflowGraph:
    graph = WorkflowGraph()
    prod, a, b, merge = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut(), t.TestTwoInOneOut()
    merge.inputconnections["input0"]["grouping"] = [0]
    merge.inputconnections["input1"]["grouping"] = "global"
    graph.connect(prod, "output", a, "input")
    graph.connect(prod, "output", b, "input")
    graph.connect(a, "output", merge, "input0")
    graph.connect(b, "output", merge, "input1")
    return graph


# -- DOT validity -----------------------------------------------------------------------
_STATEMENTS = [
    re.compile(r"^digraph request \{$"),
    re.compile(r"^node \[shape=Mrecord, style=filled, fillcolor=white\];$"),
    re.compile(r"^subgraph cluster_\w+ \{$"),
    re.compile(r'^label="(?:\\.|[^"\\])*"; style=filled; color=grey; fillcolor=\w+;$'),
    re.compile(r'^(\w+) \[label="((?:\\.|[^"\\])*)"\];$'),
    re.compile(r'^(\w+):out_(\w+)->(\w+):in_(\w+)(?: \[label="(?:\\.|[^"\\])*"\])?;$'),
    re.compile(r"^\}$"),
]


def check_dot(dot: str) -> tuple[dict[str, str], list[tuple[str, ...]]]:
    """Every line is one statement of the grammar we emit, braces nest, every edge port is a
    port of its node; and Graphviz accepts it when it is installed."""
    depth, nodes, edges = 0, {}, []
    for line in dot.splitlines():
        match = next((m for p in _STATEMENTS if (m := p.match(line))), None)
        assert match is not None, f"not a DOT statement we emit: {line!r}"
        depth += line.endswith("{") - (line == "}")
        assert depth >= 0
        if line.startswith("subgraph"):
            assert "{0" not in line  # the original's bug B21
        elif match.re is _STATEMENTS[4]:
            nodes[match.group(1)] = match.group(2)
        elif match.re is _STATEMENTS[5]:
            edges.append(match.groups()[:4])
    assert depth == 0
    for src, out, dst, inp in edges:
        assert f"<out_{out}>" in nodes[src], (src, out)
        assert f"<in_{inp}>" in nodes[dst], (dst, inp)
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tcanon"], input=dot, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    return nodes, edges


def test_pipeline_dot_keeps_the_original_layout():
    dot = drawing.to_dot(abstract_drawing(pipeline()))
    nodes, edges = check_dot(dot)
    assert dot.startswith("digraph request {\nnode [shape=Mrecord, style=filled, fillcolor=white];\n")
    assert nodes["TestProducer00"] == "{TestProducer0|{<out_output>output}}"
    assert nodes["TestOneInOneOut11"] == "{{<in_input>input}|TestOneInOneOut1|{<out_output>output}}"
    assert edges == [
        ("TestProducer00", "output", "TestOneInOneOut11", "input"),
        ("TestOneInOneOut11", "output", "TestOneInOneOut22", "input"),
    ]
    assert draw(pipeline()).count("->") == 2  # the original's draw() is this DOT


def test_nested_composites_are_nested_clusters_with_edges_to_inner_pes():
    picture = abstract_drawing(nested_composite())
    outer = next(c for c in picture.clusters if c.parent is None)
    inner = next(c for c in picture.clusters if c.parent is not None)
    assert outer.label == 'outer "box"' and inner.parent == outer.key
    assert {n.title for n in picture.nodes if n.cluster == inner.key} == {"PE_add_one0", "PE_times1"}
    _, edges = check_dot(drawing.to_dot(picture))
    assert len(edges) == 4
    titles = {n.key: n.title for n in picture.nodes}
    named = {(titles[s], titles[d]) for s, _, d, _ in edges}
    assert ("TestProducer3", "PE_add_one0") in named  # into the composite: its first PE
    assert ("TestOneInOneOut2", "TestOneInOneOut4") in named  # out of it: its last PE
    dot = drawing.to_dot(picture)
    assert dot.index(f"subgraph {inner.key}") > dot.index(f"subgraph {outer.key}")
    assert 'label="outer \\"box\\""' in dot


def test_odd_names_are_escaped():
    pe = t.TestOneInOneOut()
    pe.name = 'a|b{c}<d>"e'
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", pe, "input")
    nodes, _ = check_dot(draw(graph))
    assert any('a\\|b\\{c\\}\\<d\\>\\"e1' in label for label in nodes.values())


def test_mermaid_flowchart():
    text = drawing.to_mermaid(abstract_drawing(nested_composite()))
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    assert sum(x.strip().startswith("subgraph ") for x in lines) == 2
    assert sum(x.strip() == "end" for x in lines) == 2
    assert 'subgraph cluster_1 ["outer #quot;box#quot;"]' in text
    assert '-->|"output → input"|' in text


# -- concrete drawings -------------------------------------------------------------------
def test_concrete_drawing_has_every_instance_in_its_worker_cluster():
    plan = concrete_plan(split_merge(), "multi", 6)
    picture = concrete_drawing(plan)
    assert {n.title for n in picture.nodes} == {
        f"{plan.pe_of(i)}@{i}" for i in range(len(plan.placement.pe_of))
    }
    clusters = {c.key: c.label for c in picture.clusters}
    for node in picture.nodes:
        iid = int(node.key[1:])
        assert clusters[node.cluster] == f"worker {plan.worker_of(iid)}"
    by_input = {(e.inp, e.label) for e in picture.edges if e.inp in ("input0", "input1")}
    assert sum(e.inp == "input0" for e in picture.edges) > 1  # a fan-out, each edge labelled
    assert by_input == {("input0", "[0]"), ("input1", "global")}  # on every edge, not the first only
    merge = plan.instances["TestTwoInOneOut3"]
    global_edges = [e for e in picture.edges if e.inp == "input1"]
    assert {e.dst for e in global_edges} == {f"i{merge[0]}"}  # 'global' reaches instance 0 only
    check_dot(drawing.to_dot(picture))


def test_concrete_edges_follow_the_engine_routes():
    plan = make_plan(split_merge(), None, 6)
    found = concrete_edges(plan)
    groupby = {(s, d) for s, d, e in found if e.inp == "input0"}
    assert groupby == {
        (s, d) for s in plan.instances["TestOneInOneOut1"] for d in plan.instances["TestTwoInOneOut3"]
    }
    assert communication(next(e for *_, e in found if e.inp == "input0").grouping) == "[0]"


@pytest.mark.parametrize("mapping", ["timed_simple", "timed_multi"])
def test_concrete_plan_of_a_timed_mapping_writes_nothing(mapping, tmp_path, monkeypatch):
    """Drawing plans without running: a timed mapping's shape file is not written (it was,
    as timings/monitor_shape_run*.json in the current folder: the repository root in tests)."""
    monkeypatch.chdir(tmp_path)
    concrete_plan(pipeline(), mapping, 2 if mapping == "timed_multi" else None)
    assert list(tmp_path.iterdir()) == []


def test_concrete_plan_per_mapping():
    assert concrete_plan(pipeline(), "simple").num_workers == 1
    assert concrete_plan(pipeline(), "multi", 3).num_workers == 3
    assert concrete_plan(pipeline(), "mpi", 5).num_workers == 5  # MPI is not started
    assert concrete_plan(pipeline(), "timed_multi", 2, simple=True).placement.partitioned
    shared = concrete_drawing(concrete_plan(pipeline(), "dyn_multi", 2))
    assert "shared: any worker" in {c.label for c in shared.clusters}
    assert get_mapping("mpi").worker_word == "rank" and get_mapping("multi").worker_word == "worker"


@pytest.mark.parametrize(
    ("mapping", "num", "simple", "message"),
    [
        ("simple", 3, False, "-n: the simple mapping runs on one worker"),
        ("simple", None, True, "-s: the simple mapping has no partitioned placement"),
        ("mpi", None, False, "--concrete mpi needs -n N"),
        ("multi", 0, False, "-n must be at least 1"),
    ],
)
def test_concrete_plan_errors(mapping, num, simple, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        concrete_plan(pipeline(), mapping, num, simple)


def test_concrete_plan_unknown_mapping():
    with pytest.raises(MappingUnavailable, match="did you mean 'multi'"):
        concrete_plan(pipeline(), "mutli", 2)


# -- SVG without Graphviz ----------------------------------------------------------------
def _rect(el: ET.Element) -> tuple[float, float, float, float]:
    x, y, w, h = (float(el.get(k)) for k in ("x", "y", "width", "height"))
    return x, y, x + w, y + h


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def check_svg(picture: drawing.Drawing) -> ET.Element:
    """Well-formed SVG; a box per node and cluster; a cluster's box holds its members and
    no other node; nodes do not overlap; every edge is drawn."""
    root = ET.fromstring(to_svg(picture))
    assert root.tag == f"{SVG}svg"
    boxes = {
        g.get("id"): _rect(g.find(f"{SVG}rect")) for g in root.iter(f"{SVG}g") if g.get("class") == "node"
    }
    clusters = {
        g.get("id"): _rect(g.find(f"{SVG}rect")) for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"
    }
    assert set(boxes) == {n.key for n in picture.nodes}
    assert set(clusters) == {c.key for c in picture.clusters}
    parents = {c.key: c.parent for c in picture.clusters}
    for node in picture.nodes:
        inside = set()
        c = node.cluster
        while c is not None:
            inside.add(c)
            c = parents[c]
        for key, box in clusters.items():
            contained = box[0] <= boxes[node.key][0] and boxes[node.key][2] <= box[2]
            contained = contained and box[1] <= boxes[node.key][1] and boxes[node.key][3] <= box[3]
            assert contained == (key in inside), (node.key, key)
    keys = list(boxes)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not _overlap(boxes[a], boxes[b]), (a, b)
    assert len([p for p in root.iter(f"{SVG}path") if p.get("class") == "edge"]) == len(picture.edges)
    texts = {el.text for el in root.iter(f"{SVG}text")}
    assert {n.title for n in picture.nodes} <= texts
    return root


@pytest.mark.parametrize(
    "make", [pipeline, nested_composite, split_merge], ids=["pipeline", "nested", "split_merge"]
)
def test_svg_layout_abstract(make):
    check_svg(abstract_drawing(make()))


def test_svg_layout_concrete_and_sources_on_top():
    picture = concrete_drawing(concrete_plan(split_merge(), "multi", 4))
    root = check_svg(picture)
    tops = {
        g.get("id"): float(g.find(f"{SVG}rect").get("y"))
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "node"
    }
    for e in picture.edges:
        assert tops[e.src] < tops[e.dst]  # edges go down


def test_svg_escapes_text():
    pe = t.TestOneInOneOut()
    pe.name = "a<b>&c"
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", pe, "input")
    root = check_svg(abstract_drawing(graph))
    assert "a<b>&c1" in {el.text for el in root.iter(f"{SVG}text")}


def test_svg_of_a_cycle_and_an_empty_graph_does_not_fail():
    a, b = t.TestOneInOneOut(), t.TestOneInOneOut()
    graph = WorkflowGraph()
    graph.connect(a, "output", b, "input")
    graph.connect(b, "output", a, "input")
    ET.fromstring(to_svg(abstract_drawing(graph)))
    ET.fromstring(to_svg(drawing.Drawing()))


# -- rendering, files, the original's functions ------------------------------------------
@pytest.fixture
def no_graphviz(monkeypatch):
    monkeypatch.setattr(drawing, "graphviz", lambda: None)


def test_svg_without_graphviz_is_ours(no_graphviz):
    data = drawing.render(abstract_drawing(pipeline()), "svg")
    assert b'<g class="node"' in data
    assert drawDot(pipeline(), "svg").startswith(b"<?xml")


def test_png_without_graphviz_says_what_to_do(no_graphviz, tmp_path):
    with pytest.raises(UsageError, match=r"install Graphviz .* or write \.svg, \.dot or \.mmd"):
        drawing.render(abstract_drawing(pipeline()), "png")
    with pytest.raises(UsageError, match="Graphviz"):
        write_image(pipeline(), str(tmp_path / "g.png"))
    assert not (tmp_path / "g.png").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_png_and_svg_with_graphviz(tmp_path):
    write_image(pipeline(), str(tmp_path / "g.png"))
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in drawDot(pipeline(), "svg")
    assert drawDot(pipeline(), "pdf").startswith(b"%PDF")  # any Graphviz type, as the original


def test_drawdot_text_formats():
    graph = pipeline()
    assert drawDot(graph, "dot").decode() == draw(graph)
    assert drawDot(graph, "mmd").startswith(b"flowchart")


@pytest.mark.parametrize(
    ("name", "fmt"), [("g.dot", "dot"), ("g.GV", "dot"), ("g.mmd", "mmd"), ("g.svg", "svg")]
)
def test_write_drawing_by_suffix(tmp_path, name, fmt, no_graphviz):
    picture = abstract_drawing(pipeline())
    drawing.write_drawing(picture, tmp_path / name)
    assert (tmp_path / name).read_bytes() == drawing.render(picture, fmt)


def test_unknown_suffix_and_unwritable_file(tmp_path):
    picture = abstract_drawing(pipeline())
    with pytest.raises(UsageError, match=r"-o g\.jpg: cannot tell the drawing format from '\.jpg'"):
        drawing.write_drawing(picture, "g.jpg")
    with pytest.raises(UsageError, match=r"-o .*missing/g\.dot: cannot write the drawing"):
        drawing.write_drawing(picture, tmp_path / "missing" / "g.dot")
    with pytest.raises(UsageError, match="unknown drawing format 'gif'"):
        drawing.render(picture, "gif")
