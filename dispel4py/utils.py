"""Helpers kept from the original ``dispel4py.utils`` (graph loading, hashing, sizes)."""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Mapping
from itertools import chain
from typing import Any

from dispel4py.engine.loading import find_graph, load_module
from dispel4py.engine.routing import stable_hash
from dispel4py.errors import GraphError
from dispel4py.workflow_graph import WorkflowGraph

__all__ = [
    "load_graph",
    "loadGraph",
    "loadGraphFromFile",
    "findWorkflowGraph",
    "make_hash",
    "stable_hash",
    "total_size",
]

_log = logging.getLogger(__name__)


def load_graph(graph_source: str, attr: str | None = None) -> WorkflowGraph | None:
    """Load a graph from a module name or a file path; ``None`` (and a logged error) on failure."""
    try:
        return find_graph(load_module(graph_source), graph_source, attr)
    except GraphError as exc:
        _log.error('Failed to load graph from "%s":\n%s', graph_source, exc)
        return None


def loadGraph(module_name: str, attr: str | None = None) -> WorkflowGraph | None:
    return load_graph(module_name, attr)


def loadGraphFromFile(module_name: str, path: str, attr: str | None = None) -> WorkflowGraph | None:
    return load_graph(path, attr)


def findWorkflowGraph(mod: Any, attr: str | None = None) -> WorkflowGraph:
    return find_graph(mod, getattr(mod, "__name__", "module"), attr)


def make_hash(o: Any) -> int:
    """The original's recursive hash, built on Python's ``hash()``.

    Kept for compatibility only: for str/bytes it changes between interpreters
    (PYTHONHASHSEED). The engine routes group-by with :func:`stable_hash` instead.
    """
    if isinstance(o, (set, tuple, list)):
        return hash(tuple(make_hash(e) for e in o))
    if not isinstance(o, dict):
        return hash(o)
    new_o = copy.deepcopy(o)
    for k, v in new_o.items():
        new_o[k] = make_hash(v)
    return hash(tuple(frozenset(sorted(new_o.items()))))


def total_size(o: Any, handlers: dict | None = None, verbose: bool = False) -> int:
    """Approximate memory footprint of ``o`` and everything it contains."""
    all_handlers: dict[type, Any] = {
        tuple: iter,
        list: iter,
        dict: lambda d: chain.from_iterable(d.items()),
        set: iter,
        frozenset: iter,
    }
    all_handlers.update(handlers or {})
    seen: set[int] = set()
    default_size = sys.getsizeof(0)

    def sizeof(obj: Any) -> int:
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        size = sys.getsizeof(obj, default_size)
        for typ, handler in all_handlers.items():
            if isinstance(obj, typ):
                size += sum(map(sizeof, handler(obj)))
                break
        else:
            if isinstance(obj, Mapping):
                size += sum(map(sizeof, chain.from_iterable(obj.items())))
        return size

    return sizeof(o)
