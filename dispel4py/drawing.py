"""Drawings of a workflow: the abstract graph (PEs and their ports, composites as clusters)
and the concrete one (the instances a mapping runs and the workers hosting them).

Both become one small model, :class:`Drawing`, written as Graphviz DOT, Mermaid or SVG.
SVG needs nothing installed (``_svg.py`` lays the graph out in layers); when Graphviz's
``dot`` is on ``PATH`` it draws the SVG instead, and it alone makes PNG. The DOT text is
valid (the original's composite clusters were not, bug B21).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispel4py.errors import UsageError
from dispel4py.routing import GROUP_BY
from dispel4py.workflow_graph import WorkflowGraph, _resolve_input, _resolve_output

__all__ = [
    "Node",
    "Cluster",
    "Edge",
    "Drawing",
    "FORMATS",
    "abstract_drawing",
    "concrete_drawing",
    "concrete_edges",
    "concrete_plan",
    "communication",
    "format_of",
    "graphviz",
    "graphviz_missing",
    "render",
    "run_dot",
    "to_dot",
    "to_mermaid",
    "worker_word",
    "write_drawing",
]

# file suffix -> format
FORMATS = {".dot": "dot", ".gv": "dot", ".mmd": "mmd", ".mermaid": "mmd", ".svg": "svg", ".png": "png"}


@dataclass
class Node:
    key: str  # identifier in DOT and Mermaid
    title: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    cluster: str | None = None


@dataclass
class Cluster:
    key: str
    label: str
    parent: str | None = None


@dataclass
class Edge:
    src: str
    out: str
    dst: str
    inp: str
    label: str = ""


@dataclass
class Drawing:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)

    def children(self, cluster: str | None) -> tuple[list[Node], list[Cluster]]:
        """The nodes and clusters directly inside ``cluster`` (None: the top level)."""
        return (
            [n for n in self.nodes if n.cluster == cluster],
            [c for c in self.clusters if c.parent == cluster],
        )


# -- building -------------------------------------------------------------------------
def abstract_drawing(graph: WorkflowGraph) -> Drawing:
    """PEs with their declared ports; a composite (not yet flattened) is a cluster."""
    drawing = Drawing()
    keys: dict[int, str] = {}
    counter = iter(range(1 << 62))
    _add_members(graph, drawing, keys, counter, None)
    _add_connections(graph, drawing, keys)
    return drawing


def _add_members(
    graph: WorkflowGraph, drawing: Drawing, keys: dict[int, str], counter: Iterator[int], parent: str | None
) -> None:
    for node in graph.nodes:
        obj, index = node.obj, next(counter)
        if isinstance(obj, WorkflowGraph):
            key = f"cluster_{index}"
            drawing.clusters.append(Cluster(key, _composite_label(obj), parent))
            _add_members(obj, drawing, keys, counter, key)
            continue
        key = f"{_dot_id(obj.id)}{index}"
        keys[id(obj)] = key
        drawing.nodes.append(
            Node(key, obj.id, list(obj.inputconnections), list(obj.outputconnections), parent)
        )


def _add_connections(graph: WorkflowGraph, drawing: Drawing, keys: dict[int, str]) -> None:
    for node in graph.nodes:
        if isinstance(node.obj, WorkflowGraph):
            _add_connections(node.obj, drawing, keys)
    for src, out, dst, inp in graph.connections:
        src, out = _resolve_output(src, out)
        dst, inp = _resolve_input(dst, inp)
        drawing.edges.append(Edge(keys[id(src)], out, keys[id(dst)], inp))


def _composite_label(composite: WorkflowGraph) -> str:
    name = getattr(composite, "name", None)
    if name:
        return str(name)
    kind = type(composite).__name__
    return "composite" if kind == "WorkflowGraph" else kind


def communication(grouping: Any) -> str:
    """The original's name for how an edge routes: shuffle, all, global or the group-by keys."""
    return str(list(grouping.keys)) if grouping.kind == GROUP_BY else grouping.kind


def concrete_edges(plan: Any) -> list[tuple[int, int, Any]]:
    """``(source instance, target instance, edge)`` for every path an item may take, as the
    engine routes it (a shuffle prefers local targets; ``'global'`` reaches instance 0)."""
    from dispel4py.wiring import make_routes

    found: list[tuple[int, int, Any]] = []
    seen: set[tuple[int, int, str, str]] = set()
    for pe_id in plan.order:
        outputs = list(dict.fromkeys(e.out for e in plan.edges if e.src == pe_id))
        for iid in plan.instances[pe_id]:
            for out in outputs:
                edges = [e for e in plan.edges if e.src == pe_id and e.out == out]
                routes = make_routes(plan, plan.worker_of(iid), iid, out)
                for edge, route in zip(edges, routes):
                    for target in route.targets:
                        key = (iid, target, edge.out, edge.inp)
                        if key not in seen:
                            seen.add(key)
                            found.append((iid, target, edge))
    return found


def concrete_drawing(plan: Any, worker_word: str = "worker") -> Drawing:
    """One node per instance (``<pe id>@<instance>``) in a cluster per worker."""
    from dispel4py.dynamic.layout import SHARED

    drawing = Drawing()
    workers = sorted(set(plan.placement.worker_of))
    for worker in workers:
        label = "shared: any worker" if worker == SHARED else f"{worker_word} {worker}"
        drawing.clusters.append(Cluster(f"cluster_w{worker if worker >= 0 else 'shared'}", label))
    cluster_of = {w: c.key for w, c in zip(workers, drawing.clusters)}
    for pe_id in plan.order:
        pe = plan.pes[pe_id]
        for iid in plan.instances[pe_id]:
            drawing.nodes.append(
                Node(
                    f"i{iid}",
                    f"{pe_id}@{iid}",
                    list(pe.inputconnections),
                    list(pe.outputconnections),
                    cluster_of[plan.worker_of(iid)],
                )
            )
    labelled: set[Any] = set()  # each abstract edge's grouping is said once, not on every copy
    for src, dst, edge in concrete_edges(plan):
        label = communication(edge.grouping)
        if label == "shuffle" or edge in labelled:
            label = ""
        labelled.add(edge)
        drawing.edges.append(Edge(f"i{src}", edge.out, f"i{dst}", edge.inp, label))
    return drawing


# -- DOT and Mermaid ------------------------------------------------------------------
def _dot_id(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(text))


def _record_text(text: str) -> str:
    """Text inside a record label: escape record syntax and the quote."""
    return "".join("\\" + ch if ch in '{}|<>"\\' else ch for ch in str(text))


def _quoted(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _record(node: Node) -> str:
    ins = "|".join(f"<in_{_dot_id(p)}>{_record_text(p)}" for p in node.inputs)
    outs = "|".join(f"<out_{_dot_id(p)}>{_record_text(p)}" for p in node.outputs)
    parts = [f"{{{ins}}}" if ins else "", _record_text(node.title), f"{{{outs}}}" if outs else ""]
    return f'{node.key} [label="{{{"|".join(p for p in parts if p)}}}"];'


def to_dot(drawing: Drawing) -> str:
    """Graphviz DOT: record nodes with a port per input (top) and output (bottom)."""
    lines = ["digraph request {", "node [shape=Mrecord, style=filled, fillcolor=white];"]
    _dot_members(drawing, None, lines, 0)
    for e in drawing.edges:
        attrs = f" [label={_quoted(e.label)}]" if e.label else ""
        lines.append(f"{e.src}:out_{_dot_id(e.out)}->{e.dst}:in_{_dot_id(e.inp)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_members(drawing: Drawing, cluster: str | None, lines: list[str], depth: int) -> None:
    nodes, clusters = drawing.children(cluster)
    lines.extend(_record(n) for n in nodes)
    for c in clusters:
        fill = "lightgrey" if depth % 2 else "whitesmoke"
        lines.append(f"subgraph {c.key} {{")
        lines.append(f"label={_quoted(c.label)}; style=filled; color=grey; fillcolor={fill};")
        _dot_members(drawing, c.key, lines, depth + 1)
        lines.append("}")


def _mermaid_text(text: str) -> str:
    return str(text).replace('"', "#quot;")


def to_mermaid(drawing: Drawing) -> str:
    """A Mermaid flowchart (renders on GitHub and GitLab): clusters are subgraphs and
    each edge is labelled ``output → input``."""
    lines = ["flowchart TB"]
    _mermaid_members(drawing, None, lines, "  ")
    for e in drawing.edges:
        text = f"{e.out} → {e.inp}" + (f" ({e.label})" if e.label else "")
        lines.append(f'  {e.src} -->|"{_mermaid_text(text)}"| {e.dst}')
    return "\n".join(lines) + "\n"


def _mermaid_members(drawing: Drawing, cluster: str | None, lines: list[str], indent: str) -> None:
    nodes, clusters = drawing.children(cluster)
    lines.extend(f'{indent}{n.key}["{_mermaid_text(n.title)}"]' for n in nodes)
    for c in clusters:
        lines.append(f'{indent}subgraph {c.key} ["{_mermaid_text(c.label)}"]')
        _mermaid_members(drawing, c.key, lines, indent + "  ")
        lines.append(f"{indent}end")


# -- rendering and files --------------------------------------------------------------
def graphviz() -> str | None:
    """The path of Graphviz's ``dot``, or None."""
    return shutil.which("dot")


def format_of(path: str | Path, flag: str = "-o") -> str:
    """The drawing format a file name asks for; a usage error naming ``flag`` otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"{flag} {path}: cannot tell the drawing format from '{suffix or 'no suffix'}'; "
            f"use one of {', '.join(FORMATS)}"
        )
    return FORMATS[suffix]


def graphviz_missing(what: str) -> UsageError:
    return UsageError(
        f"{what} needs Graphviz's 'dot' program, which is not on PATH: install Graphviz "
        "(e.g. apt-get install graphviz, brew install graphviz) or write .svg, .dot or .mmd instead"
    )


def run_dot(dot_text: str, fmt: str) -> bytes:
    exe = graphviz()
    if exe is None:
        raise graphviz_missing(f"{fmt.upper()} output")
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"Graphviz 'dot' failed: {exc}") from exc
    if done.returncode != 0:
        raise UsageError(f"Graphviz 'dot -T{fmt}' failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def render(drawing: Drawing, fmt: str) -> bytes:
    """The drawing as ``dot``, ``mmd``, ``svg`` (Graphviz if present, else our own layout)
    or ``png`` (Graphviz only)."""
    if fmt == "dot":
        return to_dot(drawing).encode()
    if fmt == "mmd":
        return to_mermaid(drawing).encode()
    if fmt == "svg":
        if graphviz() is not None:
            return run_dot(to_dot(drawing), "svg")
        from dispel4py._svg import to_svg

        return to_svg(drawing).encode()
    if fmt == "png":
        return run_dot(to_dot(drawing), "png")
    raise UsageError(f"unknown drawing format '{fmt}'; formats are: dot, mmd, svg, png")


def write_drawing(drawing: Drawing, path: str | Path, fmt: str | None = None, flag: str = "-o") -> None:
    """Write ``drawing`` to ``path`` (format from the suffix unless ``fmt``); a file that
    cannot be written is a usage error naming ``flag`` and the file."""
    data = render(drawing, fmt or format_of(path, flag))
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write the drawing: {exc.strerror or exc}") from exc


# -- the concrete plan, without running -----------------------------------------------
def concrete_plan(graph: WorkflowGraph, mapping: str, num: int | None = None, simple: bool = False) -> Any:
    """The plan ``mapping`` would run with ``num`` workers (``-n``) and ``simple`` (``-s``),
    made without starting anything (an MPI mapping is not initialised: ``num`` is its
    world size)."""
    import argparse

    from dispel4py.api import mapping_options
    from dispel4py.mappings import get_mapping
    from dispel4py.plan import make_plan

    cls = get_mapping(mapping)
    probe = argparse.ArgumentParser(add_help=False)
    cls.add_arguments(probe)
    accepted = {action.dest for action in probe._actions}
    options: dict[str, Any] = {}
    if num is not None:
        if num < 1:
            raise UsageError(f"-n must be at least 1 (got {num})")
        dest = next((d for d in ("num", "num_processes") if d in accepted), None)
        if dest is None:
            raise UsageError(f"-n: the {cls.name} mapping runs on one worker; leave out -n")
        options[dest] = num
    if simple:
        if "simple" not in accepted:
            raise UsageError(f"-s: the {cls.name} mapping has no partitioned placement; leave out -s")
        options["simple"] = True
    if _initialises_mpi(cls):
        if num is None:
            raise UsageError(f"--concrete {mapping} needs -n N, the number of MPI ranks (as in mpiexec -n N)")
        return make_plan(graph, None, num, partitioned=simple)
    return cls(mapping_options(cls, options)).make_plan(graph, None, None)


def _initialises_mpi(cls: type) -> bool:
    try:
        from dispel4py.mappings.mpi import MPIMapping
    except ImportError:
        return False
    return issubclass(cls, MPIMapping)


def worker_word(mapping: str) -> str:
    """What a worker of ``mapping`` is called in drawings: 'rank' for MPI, else 'worker'."""
    from dispel4py.mappings import get_mapping

    return "rank" if _initialises_mpi(get_mapping(mapping)) else "worker"
