"""Pictures of graphs: a small model (:class:`Drawing`) and its writers (DOT, Mermaid, SVG,
PNG). It sits below the user model, which draws itself with it (the original's
``workflow_graph.draw``/``drawDot``/``write_image``); the observe layer draws plans with it.
Imports nothing of dispel4py but ``errors``."""

from dispel4py.drawing.model import Cluster, Drawing, Edge, Node
from dispel4py.drawing.render import (
    FORMATS,
    format_of,
    graphviz,
    graphviz_missing,
    render,
    run_dot,
    write_drawing,
)
from dispel4py.drawing.text import dot_id, to_dot, to_mermaid

__all__ = [
    "Cluster",
    "Drawing",
    "Edge",
    "Node",
    "FORMATS",
    "dot_id",
    "format_of",
    "graphviz",
    "graphviz_missing",
    "render",
    "run_dot",
    "to_dot",
    "to_mermaid",
    "write_drawing",
]
