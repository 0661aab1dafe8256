"""``dispel4py prov trace``: the chain of derivations from one result back to the source
items it came from, as indented lines (a stream seen twice is printed once)."""

from __future__ import annotations

from typing import Any

from .reading import LineageIndex, Stream

__all__ = ["trace_lines", "sources_of"]


def _label(stream: Stream) -> str:
    what = "state" if stream.port.startswith("_") else f"{stream.pe}:{stream.port}"
    content = stream.content
    shown = "" if content in (None, [], [{}]) else f"  metadata {content}"
    return f"{what}  id {stream.id}  (iteration {stream.iteration_index} of {stream.name}){shown}"


def trace_lines(index: LineageIndex, start: Stream, limit: int = 20) -> list[str]:
    """The derivation tree of ``start``: each stream, then (indented) what it derives from;
    at most ``limit`` derivations shown per stream, the rest counted."""
    lines: list[str] = []
    seen: set[str] = set()
    stack: list[tuple[int, str | None, Any]] = [(0, None, start)]
    while stack:
        depth, via, node = stack.pop()
        pad = "  " * depth
        arrow = "" if via is None else f"<- {via}: "
        if isinstance(node, int):  # derivations left out
            lines.append(f"{pad}... and {node} more derivation(s) (--limit)")
            continue
        if isinstance(node, str):  # a derivation whose record is not in the folder
            lines.append(f"{pad}{arrow}id {node} (no record: not in this folder, or not selected)")
            continue
        if node.id in seen:
            lines.append(f"{pad}{arrow}{node.pe}:{node.port} id {node.id} (shown above)")
            continue
        seen.add(node.id)
        if not node.derivations:
            lines.append(f"{pad}{arrow}{_label(node)}  [source]")
            continue
        lines.append(f"{pad}{arrow}{_label(node)}")
        derivations = node.derivations
        extra = len(derivations) - limit
        children = []
        for d in derivations[:limit]:
            found = index.streams.get(d.get("DerivedFromDatasetID", ""))
            children.append(
                (depth + 1, d.get("port") or "input", found or d.get("DerivedFromDatasetID", "?"))
            )
        if extra > 0:
            stack.append((depth + 1, None, extra))
        stack.extend(reversed(children))
    return lines


def sources_of(index: LineageIndex, start: Stream) -> list[Stream]:
    """Every source item (a stream deriving from nothing) ``start`` comes from."""
    found, seen, todo = [], set(), [start]
    while todo:
        stream = todo.pop()
        if stream.id in seen:
            continue
        seen.add(stream.id)
        if not stream.derivations:
            found.append(stream)
        for d in stream.derivations:
            parent = index.streams.get(d.get("DerivedFromDatasetID", ""))
            if parent is not None:
                todo.append(parent)
    return sorted(found, key=lambda s: s.order)
