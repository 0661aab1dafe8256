"""A drawing as data: nodes with their ports, edges between ports, nested clusters.

Both pictures of a workflow become this one small model (the abstract graph, made by
:func:`dispel4py.workflow_graph.abstract_drawing`, and the instances of a plan, made by
:mod:`dispel4py.observe.concrete`), so every format is written once, from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Node", "Cluster", "Edge", "Drawing"]


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
