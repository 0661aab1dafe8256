"""Find the workflow graph in a module name or a file path (``dispel4py <mapping> <workflow>``)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from types import ModuleType
from typing import Any

from dispel4py.engine.lookup import import_workflow, near_files
from dispel4py.errors import GraphError, did_you_mean
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["load_module", "find_graph", "load_workflow"]


def load_workflow(source: str, attr: str | None = None) -> WorkflowGraph:
    """Import ``source`` (module name or ``.py`` path) and return its graph, flattened."""
    graph = find_graph(load_module(source), source, attr)
    graph.flatten()
    return graph


def load_module(source: str) -> ModuleType:
    path = source if source.endswith(".py") else None
    if path is None and os.sep in source and os.path.exists(source + ".py"):
        path = source + ".py"
    if path is None and os.path.isfile(source):
        path = source
    if path is not None:
        return _load_file(path)
    try:
        return import_workflow(source)  # also from the current directory, as python -m
    except ModuleNotFoundError as exc:
        if exc.name and source.startswith(exc.name):
            raise GraphError(
                f"workflow '{source}' not found: it is neither a file nor an importable "
                f"module{near_files(source)}; give a path to a .py file or a module name on "
                "PYTHONPATH or in the current directory"
            ) from None
        raise GraphError(_failure(source, exc)) from exc
    except KeyboardInterrupt:
        raise  # Ctrl-C while importing is still Ctrl-C (exit 130)
    except BaseException as exc:  # SystemExit too: a workflow must not end the command silently
        raise GraphError(_failure(source, exc)) from exc


def _load_file(path: str) -> ModuleType:
    if not os.path.isfile(path):
        raise GraphError(f"workflow file '{path}' does not exist{near_files(path)}")
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise GraphError(f"cannot load '{path}' as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)  # lets a workflow file import its sibling modules
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        sys.modules.pop(name, None)
        raise  # Ctrl-C while importing is still Ctrl-C (exit 130)
    except BaseException as exc:  # SystemExit too: a workflow must not end the command silently
        sys.modules.pop(name, None)
        raise GraphError(_failure(path, exc)) from exc
    return module


def _failure(source: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if "importlib" not in f.filename and "dispel4py/loading" not in f.filename]
    lines = "".join(traceback.format_list(user[-5:]))
    if isinstance(exc, SystemExit):
        call = "sys.exit()" if exc.code is None else f"sys.exit({exc.code!r})"
        return (
            f"workflow module '{source}' called {call} while being imported: dispel4py imports "
            "it to find the graph, so put script code under 'if __name__ == \"__main__\":'"
            f"\n{lines}"
        ).rstrip()
    return f"failed to load workflow '{source}': {type(exc).__name__}: {exc}\n{lines}".rstrip()


def find_graph(module: ModuleType, source: str, attr: str | None = None) -> WorkflowGraph:
    """The graph named ``attr``, else the one top-level non-composite WorkflowGraph."""
    if attr is not None:
        graphs = _graphs(module)
        value: Any = getattr(module, attr, None)
        if value is None:
            raise GraphError(
                f"workflow '{source}' has no attribute '{attr}'{did_you_mean(attr, graphs)}; "
                f"graphs defined there: {', '.join(graphs) or '(none)'}"
            )
        if not isinstance(value, WorkflowGraph):
            raise GraphError(f"'{attr}' in '{source}' is a {type(value).__name__}, not a WorkflowGraph")
        return value
    graphs = _graphs(module)
    distinct = {id(g): name for name, g in graphs.items()}
    if not distinct:
        raise GraphError(
            f"no WorkflowGraph found in '{source}': define one at module level "
            "(e.g. graph = WorkflowGraph()) or name it with -a NAME"
        )
    if len(distinct) > 1:
        names = ", ".join(sorted(distinct.values()))
        raise GraphError(f"'{source}' defines several graphs ({names}); choose one with -a NAME")
    return graphs[next(iter(distinct.values()))]


def _graphs(module: ModuleType) -> dict[str, WorkflowGraph]:
    """Top-level WorkflowGraphs that are not composites (no input/output mappings)."""
    found = {}
    for name, value in sorted(vars(module).items()):
        if isinstance(value, WorkflowGraph) and not name.startswith("__"):
            if getattr(value, "inputmappings", None) or getattr(value, "outputmappings", None):
                continue
            found[name] = value
    return found
