"""The abstract workflow graph: PEs (or composite graphs) joined by named ports.

Compatible with the original dispel4py: ``WorkflowGraph.connect``, ``WorkflowNode``,
ids ``<name><global counter>`` given when a PE joins a graph, composites with
``inputmappings``/``outputmappings`` and ``flatten()``. Unlike the original, connections are
kept as an ordered, *directed* list (the networkx view in ``.graph`` is built on demand),
so two connections between the same pair of PEs in opposite directions are both kept.
"""

from __future__ import annotations

import subprocess
from typing import Any

from dispel4py.core import GenericPE

__all__ = ["WorkflowNode", "WorkflowGraph", "draw", "drawDot", "write_image"]

FROM_CONNECTION = "from_connection"
TO_CONNECTION = "to_connection"
DIRECTION = "direction"
ALL_CONNECTIONS = "ALL_CONNECTIONS"


class WorkflowNode:
    """A node of a workflow graph wrapping a PE or a composite graph."""

    WORKFLOW_NODE_PE = 0
    WORKFLOW_NODE_FN = 1
    WORKFLOW_NODE_CP = 2
    node_counter = 0

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        if isinstance(obj, GenericPE):
            obj.id = obj.name + str(WorkflowNode.node_counter)
            WorkflowNode.node_counter += 1
            self.nodeType = self.WORKFLOW_NODE_PE
            self.inputs: list[dict] = [{} for _ in obj.inputconnections]
            self.outputs: list[dict] = [{} for _ in obj.outputconnections]
        elif isinstance(obj, WorkflowGraph):
            self.nodeType = self.WORKFLOW_NODE_CP
            self.inputs = [{} for _ in getattr(obj, "inputmappings", {}) or {}]
            self.outputs = [{} for _ in getattr(obj, "outputmappings", {}) or {}]
        else:
            raise TypeError(
                f"Cannot add {obj!r} to a workflow graph: expected a PE (GenericPE subclass) "
                "or a composite WorkflowGraph"
            )

    def get_contained_object(self) -> Any:
        return self.obj

    def __repr__(self) -> str:
        return f"WorkflowNode({getattr(self.obj, 'id', self.obj)!r})"


class WorkflowGraph:
    """A directed graph of PEs; ``connect(a, 'output', b, 'input')`` adds an edge."""

    partitions: list[list[Any]]  # optional, set by users for partitioned runs
    inputmappings: dict[str, tuple[Any, str]]  # composites only
    outputmappings: dict[str, tuple[Any, str]]

    def __init__(self) -> None:
        self.objToNode: dict[Any, WorkflowNode] = {}
        self._nodes: list[WorkflowNode] = []
        # (source object, output name, destination object, input name), in connect order
        self._connections: list[tuple[Any, str, Any, str]] = []
        self._nx_cache: Any = None

    # -- building --------------------------------------------------------------------
    def add(self, pe: Any) -> WorkflowNode:
        node = self.objToNode.get(pe)
        if node is None:
            node = WorkflowNode(pe)
            self._add_node(node)
        return node

    def _add_node(self, node: WorkflowNode) -> None:
        self.objToNode[node.obj] = node
        self._nodes.append(node)
        self._nx_cache = None

    def connect(self, fromNode: Any, fromConnection: str, toNode: Any, toConnection: str) -> None:
        self.add(fromNode)
        self.add(toNode)
        self._connections.append((fromNode, fromConnection, toNode, toConnection))
        self._nx_cache = None

    # -- reading ---------------------------------------------------------------------
    @property
    def nodes(self) -> list[WorkflowNode]:
        """Nodes in insertion order."""
        return list(self._nodes)

    @property
    def connections(self) -> list[tuple[Any, str, Any, str]]:
        """Directed connections ``(source, output, destination, input)`` in connect order."""
        return list(self._connections)

    def get_contained_objects(self) -> list[Any]:
        return sorted((n.obj for n in self._nodes), key=lambda o: getattr(o, "id", ""))

    @property
    def graph(self) -> Any:
        """A networkx view (``nx.Graph`` of ``WorkflowNode``), as the original exposed.

        Edge data carries ``DIRECTION``, ``FROM_CONNECTION``, ``TO_CONNECTION`` and
        ``ALL_CONNECTIONS`` like the original. Built on first use, so that importing and
        running dispel4py does not pay for importing networkx.
        """
        if self._nx_cache is None:
            import networkx as nx

            view = nx.Graph()
            for node in self._nodes:
                view.add_node(node)
            for src, out, dst, inp in self._connections:
                a, b = self.objToNode[src], self.objToNode[dst]
                if view.has_edge(a, b):
                    view[a][b][ALL_CONNECTIONS].append((out, inp))
                else:
                    view.add_edge(
                        a,
                        b,
                        **{
                            "FROM_CONNECTION": out,
                            "TO_CONNECTION": inp,
                            "DIRECTION": (src, dst),
                            ALL_CONNECTIONS: [(out, inp)],
                        },
                    )
            self._nx_cache = view
        return self._nx_cache

    def propagate_types(self) -> None:
        for src, out, dst, inp in self._connections:
            if isinstance(src, GenericPE) and isinstance(dst, GenericPE):
                types = src.get_output_types()
                dst.set_input_types({inp: types.get(out)})

    # -- composites ------------------------------------------------------------------
    def flatten(self) -> None:
        """Replace every composite node by its PEs, reconnecting through its mappings."""
        while any(n.nodeType == WorkflowNode.WORKFLOW_NODE_CP for n in self._nodes):
            self._flatten_once()
        self._nx_cache = None

    def _flatten_once(self) -> None:
        nodes: list[WorkflowNode] = []
        seen: set[int] = set()
        for node in self._nodes:
            inner_nodes = node.obj._nodes if node.nodeType == WorkflowNode.WORKFLOW_NODE_CP else [node]
            for inner in inner_nodes:
                if id(inner.obj) not in seen:
                    seen.add(id(inner.obj))
                    nodes.append(inner)
        connections: list[tuple[Any, str, Any, str]] = []
        for src, out, dst, inp in self._connections:
            src, out = _resolve_output(src, out)
            dst, inp = _resolve_input(dst, inp)
            connections.append((src, out, dst, inp))
        for node in self._nodes:
            if node.nodeType == WorkflowNode.WORKFLOW_NODE_CP:
                connections.extend(node.obj._connections)
        self._nodes = nodes
        self.objToNode = {n.obj: n for n in nodes}
        self._connections = connections

    def __repr__(self) -> str:
        ids = ", ".join(str(getattr(n.obj, "id", n.obj)) for n in self._nodes)
        return f"<WorkflowGraph [{ids}]>"


def _composite_mapping(composite: Any, kind: str, port: str) -> tuple[Any, str]:
    mappings = getattr(composite, kind, None) or {}
    try:
        return mappings[port]
    except KeyError:
        from dispel4py.errors import GraphError, did_you_mean

        side = "input" if kind == "inputmappings" else "output"
        raise GraphError(
            f"composite graph has no {side} '{port}'{did_you_mean(port, mappings)}; "
            f"its {side}s are: {', '.join(mappings) or '(none)'}"
        ) from None


def _resolve_output(obj: Any, port: str) -> tuple[Any, str]:
    while isinstance(obj, WorkflowGraph):
        obj, port = _composite_mapping(obj, "outputmappings", port)
    return obj, port


def _resolve_input(obj: Any, port: str) -> tuple[Any, str]:
    while isinstance(obj, WorkflowGraph):
        obj, port = _composite_mapping(obj, "inputmappings", port)
    return obj, port


# -- drawing --------------------------------------------------------------------------
def draw(graph: WorkflowGraph) -> str:
    """Return the graph in Graphviz DOT, one record node per PE with its ports.

    Composites are drawn as clusters holding their PEs; edges go to the inner PEs' ports.
    """
    lines = ["digraph request {", "node [shape=Mrecord, style=filled, fillcolor=white];"]
    names: dict[int, str] = {}
    counter = [0]
    _draw_nodes(graph, lines, names, counter)
    _draw_edges(graph, lines, names)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _draw_nodes(graph: WorkflowGraph, lines: list[str], names: dict[int, str], counter: list[int]) -> None:
    for node in graph._nodes:
        obj = node.obj
        index = counter[0]
        counter[0] += 1
        if isinstance(obj, WorkflowGraph):
            lines.append(f'subgraph cluster_{index} {{ label="composite {index}";')
            _draw_nodes(obj, lines, names, counter)
            lines.append("}")
            continue
        name = f"{_dot_id(obj.id)}{index}"
        names[id(obj)] = name
        ins = "|".join(f"<in_{_dot_id(p)}>{_dot_label(p)}" for p in obj.inputconnections)
        outs = "|".join(f"<out_{_dot_id(p)}>{_dot_label(p)}" for p in obj.outputconnections)
        parts = [f"{{{ins}}}" if ins else "", _dot_label(obj.id), f"{{{outs}}}" if outs else ""]
        lines.append(f'{name} [label="{{{"|".join(x for x in parts if x)}}}"];')


def _draw_edges(graph: WorkflowGraph, lines: list[str], names: dict[int, str]) -> None:
    for node in graph._nodes:
        if isinstance(node.obj, WorkflowGraph):
            _draw_edges(node.obj, lines, names)
    for src, out, dst, inp in graph._connections:
        src, out = _resolve_output(src, out)
        dst, inp = _resolve_input(dst, inp)
        lines.append(f"{names[id(src)]}:out_{_dot_id(out)}->{names[id(dst)]}:in_{_dot_id(inp)};")


def _dot_id(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(text))


def _dot_label(text: str) -> str:
    return "".join("\\" + ch if ch in '{}|<>"' else ch for ch in str(text))


def drawDot(graph: WorkflowGraph, img_type: str = "png") -> bytes:
    """Render the graph with Graphviz ``dot`` and return the image bytes."""
    try:
        done = subprocess.run(
            ["dot", f"-T{img_type}"], input=draw(graph).encode(), capture_output=True, check=True
        )
    except FileNotFoundError:
        from dispel4py.errors import UsageError

        raise UsageError(
            "drawing needs Graphviz's 'dot' program; install Graphviz (e.g. apt-get install graphviz)"
        ) from None
    return done.stdout


def write_image(graph: WorkflowGraph, filename: str, img_type: str = "png") -> None:
    with open(filename, "wb") as f:
        f.write(drawDot(graph, img_type))
