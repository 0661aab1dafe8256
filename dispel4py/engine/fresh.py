"""Fresh copies of a graph's PEs for :func:`dispel4py.run`.

A run changes its PE objects (counters, buffers, accumulated state). Users of Dask, Ray or
Beam build a graph once and run it many times; each run must start from the graph as they
built it, and leave it so. ``dispel4py.run`` therefore runs on a deep copy of the graph.
The original's entry points (``simple_process.process_and_return`` …) keep the original's
behaviour, where PE objects carry their state from one run to the next (spec Appendix A).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from dispel4py.core import GenericPE
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["fresh_copy"]

_log = logging.getLogger("dispel4py.api")


def fresh_copy(
    graph: WorkflowGraph, inputs: Mapping[Any, Any] | None
) -> tuple[WorkflowGraph, Mapping[Any, Any] | None]:
    """A deep copy of ``graph`` and ``inputs`` whose PE-object keys point into the copy.

    The input values are not copied (they may be large and the engine only reads them). A
    graph that cannot be copied (a PE holding a lock, a socket, an open file) runs as it is,
    with a warning that names the PE: its state then carries over to the next run.
    """
    memo: dict[int, Any] = {}
    try:
        copied = copy.deepcopy(graph, memo)
    except Exception as exc:
        _log.warning(
            "dispel4py.run works on a copy of the graph, but %s cannot be copied (%s: %s); running "
            "on the graph itself, so PE state changed by this run carries over to the next",
            _culprit(graph),
            type(exc).__name__,
            exc,
        )
        return graph, inputs
    if inputs is None:
        return copied, None
    return copied, {(memo.get(id(k), k) if isinstance(k, GenericPE) else k): v for k, v in inputs.items()}


def _culprit(graph: WorkflowGraph) -> str:
    """The first PE that cannot be deep-copied, for the warning."""
    for node in list(graph.graph.nodes):
        obj = node.get_contained_object()
        try:
            copy.deepcopy(obj)
        except Exception:
            return f"PE {getattr(obj, 'id', obj)!s}"
    return "the graph"
