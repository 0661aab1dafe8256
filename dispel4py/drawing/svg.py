"""SVG for a :class:`~dispel4py.drawing.model.Drawing` without Graphviz: a small layered layout.

* **Layers**: a node's row is the length of the longest path reaching it (sources on top).
* **Bands**: every cluster is a vertical band of its own, side by side with its siblings
  and the loose nodes of its parent, so cluster boxes never overlap other nodes (workers
  in a concrete drawing become columns).
* **Order in a row**: one sweep down, each node by the mean position of its predecessors,
  which removes most crossings in the pipelines and fan-outs workflows are made of.

Edges are curves from an output port (bottom of a node) to an input port (top).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape as _html_escape

from dispel4py.drawing.model import Drawing, Node

__all__ = ["to_svg"]

_CHAR_W = 7.0  # width of a character at font-size 12 (approximate)
_PORT_H, _TITLE_H = 18.0, 24.0
_NODE_H = 2 * _PORT_H + _TITLE_H
_GAP_X, _PAD, _MARGIN = 24.0, 12.0, 16.0
_LABEL_H = 18.0  # room for a cluster's label above its first row


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as entities (what SVG text and these quoted attributes need;
    ``html`` rather than ``xml.sax``, which imports ``urllib.request`` into every command)."""
    return _html_escape(text, quote=False)


@dataclass
class _Box:
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0


@dataclass
class _Layout:
    layer: dict[str, int] = field(default_factory=dict)
    order: dict[str, float] = field(default_factory=dict)
    width: dict[str, float] = field(default_factory=dict)
    node_box: dict[str, _Box] = field(default_factory=dict)
    cluster_box: dict[str, _Box] = field(default_factory=dict)
    row_y: list[float] = field(default_factory=list)


def _layers(drawing: Drawing) -> dict[str, int]:
    """Longest path from a source (Kahn's order); nodes on a cycle go below the rest."""
    preds: dict[str, list[str]] = {n.key: [] for n in drawing.nodes}
    succs: dict[str, list[str]] = {n.key: [] for n in drawing.nodes}
    for e in drawing.edges:
        if e.src != e.dst:
            preds[e.dst].append(e.src)
            succs[e.src].append(e.dst)
    waiting = {key: len(p) for key, p in preds.items()}
    ready = [key for key, n in waiting.items() if n == 0]
    layer: dict[str, int] = {}
    while ready:
        key = ready.pop()
        layer[key] = 1 + max((layer[p] for p in preds[key]), default=-1)
        for nxt in succs[key]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    below = 1 + max(layer.values(), default=-1)
    for key in preds:
        layer.setdefault(key, below)
    return layer


def _node_width(node: Node) -> float:
    ports = max(sum(len(p) + 2 for p in node.inputs), sum(len(p) + 2 for p in node.outputs))
    return max(len(node.title) + 4, ports, 8) * _CHAR_W


def _order(drawing: Drawing, layout: _Layout) -> None:
    """Mean position of the predecessors, one sweep from the top."""
    preds: dict[str, list[str]] = {n.key: [] for n in drawing.nodes}
    for e in drawing.edges:
        preds[e.dst].append(e.src)
    rows: dict[int, list[Node]] = {}
    for node in drawing.nodes:
        rows.setdefault(layout.layer[node.key], []).append(node)
    for row in sorted(rows):
        for position, node in enumerate(rows[row]):
            placed = [layout.order[p] for p in preds[node.key] if p in layout.order]
            layout.order[node.key] = sum(placed) / len(placed) if placed else float(position)


def _place_band(drawing: Drawing, layout: _Layout, cluster: str | None, x0: float) -> float:
    """Place the members of ``cluster`` from ``x0``; return the band's width."""
    nodes, clusters = drawing.children(cluster)
    pad = _PAD if cluster is not None else 0.0
    x = x0 + pad
    rows: dict[int, list[Node]] = {}
    for node in nodes:
        rows.setdefault(layout.layer[node.key], []).append(node)
    loose = 0.0
    for row_nodes in rows.values():
        loose = max(loose, sum(layout.width[n.key] for n in row_nodes) + _GAP_X * (len(row_nodes) - 1))
    for row, row_nodes in rows.items():
        row_nodes.sort(key=lambda n: layout.order[n.key])
        used = sum(layout.width[n.key] for n in row_nodes) + _GAP_X * (len(row_nodes) - 1)
        nx = x + (loose - used) / 2
        for n in row_nodes:
            layout.node_box[n.key] = _Box(nx, layout.row_y[row], layout.width[n.key], _NODE_H)
            nx += layout.width[n.key] + _GAP_X
    x += loose
    for c in clusters:
        if x > x0 + pad:
            x += _GAP_X
        x += _place_band(drawing, layout, c.key, x)
    width = max(x + pad - x0, len(_cluster_label(drawing, cluster)) * _CHAR_W + 2 * pad)
    if cluster is not None:
        layout.cluster_box[cluster] = _cluster_extent(drawing, layout, cluster, x0, width)
    return width


def _cluster_label(drawing: Drawing, cluster: str | None) -> str:
    return next((c.label for c in drawing.clusters if c.key == cluster), "")


def _members(drawing: Drawing, cluster: str) -> list[str]:
    nodes, clusters = drawing.children(cluster)
    keys = [n.key for n in nodes]
    for c in clusters:
        keys += _members(drawing, c.key)
    return keys


def _cluster_extent(drawing: Drawing, layout: _Layout, cluster: str, x0: float, width: float) -> _Box:
    """The box of ``cluster``: its rows, plus room for its label and for each cluster
    nested inside it (outer boxes reach further up and down)."""
    rows = [layout.layer[k] for k in _members(drawing, cluster)] or [0]
    outside = _max_depth(drawing) - _depth_of(cluster, {c.key: c.parent for c in drawing.clusters})
    top = layout.row_y[min(rows)] - _PAD - _LABEL_H - outside * (_LABEL_H + _PAD)
    bottom = layout.row_y[max(rows)] + _NODE_H + _PAD + outside * _PAD
    return _Box(x0, top, width, bottom - top)


def _max_depth(drawing: Drawing) -> int:
    parent = {c.key: c.parent for c in drawing.clusters}
    best = 0
    for key in parent:
        d, p = 0, parent[key]
        while p is not None:
            d, p = d + 1, parent.get(p)
        best = max(best, d)
    return best


def _layout(drawing: Drawing) -> _Layout:
    layout = _Layout(layer=_layers(drawing))
    layout.width = {n.key: _node_width(n) for n in drawing.nodes}
    _order(drawing, layout)
    levels = (_max_depth(drawing) + 1) if drawing.clusters else 0
    above = levels * (_LABEL_H + _PAD)  # the labels and padding of the boxes around a row
    gap = 40.0 + above + levels * _PAD
    rows = max(layout.layer.values(), default=-1) + 1
    layout.row_y = [_MARGIN + above + r * (_NODE_H + gap) for r in range(rows)]
    _place_band(drawing, layout, None, _MARGIN)
    return layout


def _port_x(box: _Box, ports: list[str], port: str) -> float:
    if port not in ports:
        return box.x + box.w / 2
    return box.x + box.w * (ports.index(port) + 0.5) / len(ports)


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="black"/>'


def _node_svg(node: Node, box: _Box) -> list[str]:
    out = [
        f'<g class="node" id="{escape(node.key)}">',
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="8" '
        'fill="white" stroke="black"/>',
    ]
    mid = box.y + _PORT_H + _TITLE_H / 2 + 4
    out.append(
        f'<text x="{box.x + box.w / 2:.1f}" y="{mid:.1f}" text-anchor="middle">{escape(node.title)}</text>'
    )
    rows = ((node.inputs, box.y, box.y + _PORT_H), (node.outputs, box.y + box.h - _PORT_H, box.y + box.h))
    for ports, top, bottom in rows:
        if not ports:
            continue
        out.append(
            _line(box.x, bottom if top == box.y else top, box.x + box.w, bottom if top == box.y else top)
        )
        for i, port in enumerate(ports):
            px = _port_x(box, ports, port)
            y = bottom - 5
            out.append(
                f'<text class="port" x="{px:.1f}" y="{y:.1f}" text-anchor="middle">{escape(port)}</text>'
            )
            if i:
                sx = box.x + box.w * i / len(ports)
                out.append(_line(sx, top, sx, bottom))
    out.append("</g>")
    return out


def to_svg(drawing: Drawing) -> str:
    layout = _layout(drawing)
    nodes = {n.key: n for n in drawing.nodes}
    boxes = list(layout.node_box.values()) + list(layout.cluster_box.values())
    width = max((b.x + b.w for b in boxes), default=0.0) + _MARGIN
    height = max((b.y + b.h for b in boxes), default=0.0) + _MARGIN
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>',
        "<style>.port { font-size: 10px; fill: #333; } .edge-label { font-size: 10px; fill: #555; }</style>",
        f'<rect width="{width:.1f}" height="{height:.1f}" fill="white"/>',
    ]
    parents = {c.key: c.parent for c in drawing.clusters}
    for c in sorted(drawing.clusters, key=lambda c: _depth_of(c.key, parents)):
        box = layout.cluster_box[c.key]
        fill = "#e8e8e8" if _depth_of(c.key, parents) % 2 else "#f5f5f5"
        out.append(
            f'<g class="cluster" id="{escape(c.key)}"><rect x="{box.x:.1f}" y="{box.y:.1f}" '
            f'width="{box.w:.1f}" height="{box.h:.1f}" fill="{fill}" stroke="grey"/>'
            f'<text x="{box.x + 6:.1f}" y="{box.y + 14:.1f}">{escape(c.label)}</text></g>'
        )
    for e in drawing.edges:
        a, b = layout.node_box[e.src], layout.node_box[e.dst]
        x1, y1 = _port_x(a, nodes[e.src].outputs, e.out), a.y + a.h
        x2, y2 = _port_x(b, nodes[e.dst].inputs, e.inp), b.y
        bend = max(30.0, (y2 - y1) / 2)
        out.append(
            f'<path class="edge" d="M {x1:.1f} {y1:.1f} C {x1:.1f} {y1 + bend:.1f} {x2:.1f} {y2 - bend:.1f} '
            f'{x2:.1f} {y2:.1f}" fill="none" stroke="#333" marker-end="url(#arrow)"/>'
        )
        if e.label:
            out.append(
                f'<text class="edge-label" x="{(x1 + x2) / 2 + 4:.1f}" y="{(y1 + y2) / 2:.1f}">'
                f"{escape(e.label)}</text>"
            )
    for key, box in layout.node_box.items():
        out.extend(_node_svg(nodes[key], box))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _depth_of(key: str, parents: dict[str, str | None]) -> int:
    depth, parent = 0, parents.get(key)
    while parent is not None:
        depth, parent = depth + 1, parents.get(parent)
    return depth
