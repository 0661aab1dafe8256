"""A :class:`~dispel4py.drawing.model.Drawing` as text: Graphviz DOT and Mermaid.

The DOT text is valid for composites too (the original's composite clusters were not, bug
B21): record nodes with a port per input (top) and output (bottom).
"""

from __future__ import annotations

from dispel4py.drawing.model import Drawing, Node

__all__ = ["dot_id", "to_dot", "to_mermaid"]


def dot_id(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(text))


def _record_text(text: str) -> str:
    """Text inside a record label: escape record syntax and the quote."""
    return "".join("\\" + ch if ch in '{}|<>"\\' else ch for ch in str(text))


def _quoted(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _record(node: Node) -> str:
    ins = "|".join(f"<in_{dot_id(p)}>{_record_text(p)}" for p in node.inputs)
    outs = "|".join(f"<out_{dot_id(p)}>{_record_text(p)}" for p in node.outputs)
    parts = [f"{{{ins}}}" if ins else "", _record_text(node.title), f"{{{outs}}}" if outs else ""]
    return f'{node.key} [label="{{{"|".join(p for p in parts if p)}}}"];'


def to_dot(drawing: Drawing) -> str:
    """Graphviz DOT: record nodes with a port per input (top) and output (bottom)."""
    lines = ["digraph request {", "node [shape=Mrecord, style=filled, fillcolor=white];"]
    _dot_members(drawing, None, lines, 0)
    for e in drawing.edges:
        attrs = f" [label={_quoted(e.label)}]" if e.label else ""
        lines.append(f"{e.src}:out_{dot_id(e.out)}->{e.dst}:in_{dot_id(e.inp)}{attrs};")
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
