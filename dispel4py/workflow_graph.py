"""The abstract workflow graph: PEs (or composite graphs) joined by named ports.

Compatible with the original dispel4py: ``WorkflowGraph.connect``, ``WorkflowNode``,
ids ``<name><global counter>`` given when a PE joins a graph, composites with
``inputmappings``/``outputmappings`` and ``flatten()``. Unlike the original, connections are
kept as an ordered, *directed* list (the networkx view in ``.graph`` is built on demand),
so two connections between the same pair of PEs in opposite directions are both kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dispel4py.core import GenericPE
from dispel4py.errors import GraphError, did_you_mean

if TYPE_CHECKING:  # the drawing package is imported when a graph is drawn, not with every run
    from dispel4py.drawing import Drawing

__all__ = ["WorkflowNode", "WorkflowGraph", "abstract_drawing", "draw", "drawDot", "write_image"]

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


# -- drawing: the graph's own picture, and the original's names for it -----------------
def abstract_drawing(graph: WorkflowGraph) -> Drawing:
    """PEs with their declared ports; a composite (not yet flattened) is a cluster."""
    from dispel4py.drawing import Drawing

    drawing = Drawing()
    keys: dict[int, str] = {}
    counter = iter(range(1 << 62))
    _add_members(graph, drawing, keys, counter, None)
    _add_connections(graph, drawing, keys)
    return drawing


def _add_members(
    graph: WorkflowGraph, drawing: Drawing, keys: dict[int, str], counter: Iterator[int], parent: str | None
) -> None:
    from dispel4py.drawing import Cluster, Node, dot_id

    for node in graph.nodes:
        obj, index = node.obj, next(counter)
        if isinstance(obj, WorkflowGraph):
            key = f"cluster_{index}"
            drawing.clusters.append(Cluster(key, _composite_label(obj), parent))
            _add_members(obj, drawing, keys, counter, key)
            continue
        key = f"{dot_id(obj.id)}{index}"
        keys[id(obj)] = key
        drawing.nodes.append(
            Node(key, obj.id, list(obj.inputconnections), list(obj.outputconnections), parent)
        )


def _add_connections(graph: WorkflowGraph, drawing: Drawing, keys: dict[int, str]) -> None:
    from dispel4py.drawing import Edge

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


def draw(graph: WorkflowGraph) -> str:
    """Return the graph in Graphviz DOT, one record node per PE with its ports.

    Composites are drawn as clusters holding their PEs; edges go to the inner PEs' ports.
    """
    from dispel4py.drawing import to_dot

    return to_dot(abstract_drawing(graph))


def drawDot(graph: WorkflowGraph, img_type: str = "png") -> bytes:
    """The graph as an image: ``png`` (and Graphviz's other types) through Graphviz ``dot``;
    ``svg`` without Graphviz too, ``dot`` and ``mmd`` as text."""
    from dispel4py.drawing import FORMATS, render, run_dot, to_dot

    drawing = abstract_drawing(graph)
    if img_type in FORMATS.values():
        return render(drawing, img_type)
    return run_dot(to_dot(drawing), img_type)


def write_image(graph: WorkflowGraph, filename: str, img_type: str = "png") -> None:
    """Write ``drawDot(graph, img_type)`` to ``filename``."""
    data = drawDot(graph, img_type)
    with open(filename, "wb") as f:
        f.write(data)
