"""Helpers of the conformance suite: running a graph on a mapping entry, comparing outputs.

A *mapping entry* is ``(name, how)``:

* ``how`` is a dict of mapping options: the graph runs in this process through
  ``dispel4py.run(graph, inputs, name, **how)``;
* ``how`` is a callable ``runner(graph_factory, inputs) -> outputs``: the runner is
  responsible for building the graph itself (e.g. in a subprocess under ``mpiexec``).
  Graph factories are module-level functions of importable modules (or ``functools.partial``
  of them), so a runner can pickle them; inputs are keyed by PE names or ids (strings).

Graph factories build a fresh graph on every call because PE objects keep state between
runs. PE ids are numbered from 0, as in a fresh interpreter, so that ids are the same
whichever runner built the graph.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil

import dispel4py
from dispel4py.engine.loading import load_workflow
from dispel4py.engine.result import RunResult
from dispel4py.workflow_graph import WorkflowGraph, WorkflowNode

Outputs = dict[str, dict[str, list[Any]]]
GraphFactory = Callable[[], WorkflowGraph]
MappingEntry = tuple[str, Any]

EXAMPLES_PACKAGE = "dispel4py.examples.graph_testing"


# -- running ---------------------------------------------------------------------------------
@contextlib.contextmanager
def fresh_ids() -> Iterator[None]:
    """Number PEs from 0 as in a fresh interpreter; never move the global counter back."""
    saved = WorkflowNode.node_counter
    WorkflowNode.node_counter = 0
    try:
        yield
    finally:
        WorkflowNode.node_counter = max(saved, WorkflowNode.node_counter)


def build(factory: GraphFactory) -> WorkflowGraph:
    with fresh_ids():
        return factory()


def is_in_process(entry: MappingEntry) -> bool:
    return isinstance(entry[1], dict)


def entry_id(entry: MappingEntry) -> str:
    name, how = entry
    if not isinstance(how, dict):
        return f"{name}-{getattr(how, 'ranks', 'runner')}"
    return "-".join([name, *(f"{k}={v}" for k, v in how.items())])


def run_on(entry: MappingEntry, factory: GraphFactory, inputs: dict[str, Any] | None) -> Outputs:
    """Run a freshly built graph on a mapping entry; return ``{pe_id: {output: [items]}}``."""
    _name, how = entry
    if not isinstance(how, dict):
        return how(factory, inputs)
    return run_result_on(entry, factory, inputs).outputs


def run_result_on(entry: MappingEntry, factory: GraphFactory, inputs: dict[str, Any] | None) -> RunResult:
    """The whole :class:`RunResult` (in-process entries only)."""
    name, how = entry
    if not isinstance(how, dict):
        raise TypeError(f"mapping entry {entry_id(entry)} runs out of process; use run_on()")
    graph = build(factory)
    return dispel4py.run(graph, inputs, name, **how)


# -- the example workflows -------------------------------------------------------------------
# large_teecopy reads its producer's item count from sys.argv[4], as the original did
# (the N of ``dispel4py simple large_teecopy -i N``); every example is loaded with this argv.
EXAMPLE_ARGV = ["dispel4py", "simple", "example", "-i", "3"]


def load_example(name: str) -> WorkflowGraph:
    """A fresh graph of ``dispel4py.examples.graph_testing.<name>`` (module re-executed)."""
    module = f"{EXAMPLES_PACKAGE}.{name}"
    sys.modules.pop(module, None)
    importlib.invalidate_caches()
    saved_argv = sys.argv
    sys.argv = list(EXAMPLE_ARGV)
    try:
        return load_workflow(module)
    finally:
        sys.argv = saved_argv


# -- comparing -------------------------------------------------------------------------------
def canonical(item: Any) -> Any:
    """Plain Python values (numpy scalars unwrapped, tuples as lists) for comparisons."""
    if isinstance(item, (list, tuple)):
        return [canonical(x) for x in item]
    if isinstance(item, dict):
        return {canonical(k): canonical(v) for k, v in item.items()}
    unwrap = getattr(item, "item", None)
    if callable(unwrap) and type(item).__module__ == "numpy":
        return unwrap()
    return item


def multiset(outputs: Outputs) -> dict[str, dict[str, list[str]]]:
    """Outputs with every item list replaced by the sorted reprs of its canonical items."""
    return {
        pe: {out: sorted(repr(canonical(x)) for x in items) for out, items in ports.items()}
        for pe, ports in outputs.items()
    }


def by_name(outputs: Outputs) -> dict[str, dict[str, list[Any]]]:
    """Outputs keyed by PE name (the id without its counter); names must be unique."""
    result: dict[str, dict[str, list[Any]]] = {}
    for pe_id, ports in outputs.items():
        name = re.sub(r"\d+$", "", pe_id)
        assert name not in result, f"two PEs named {name} in {sorted(outputs)}"
        result[name] = ports
    return result


def items_of(outputs: Outputs, name: str, output: str = "output") -> list[Any]:
    """Items of the PE called ``name`` (missing PE or port = no items)."""
    return [canonical(x) for x in by_name(outputs).get(name, {}).get(output, [])]


# -- processes -------------------------------------------------------------------------------
def _is_helper(proc: psutil.Process) -> bool:
    """Long-lived helpers of multiprocessing that legitimately outlive a run."""
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.ZombieProcess:  # an unreaped child is a leftover, not a helper
        return False
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return True
    return "resource_tracker" in cmdline or "forkserver" in cmdline


def child_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if not _is_helper(p)}


def leftover_children(baseline: set[int], window_s: float = 30.0) -> list[str]:
    """Children (not in ``baseline``) still alive after ``window_s`` seconds of reaping (a
    hang guard: it returns as soon as none is left; a loaded machine may take a while to
    reap a killed worker)."""
    deadline = time.monotonic() + window_s
    while True:
        left = []
        for proc in psutil.Process().children(recursive=True):
            if proc.pid in baseline or _is_helper(proc):
                continue
            try:
                left.append(f"{proc.pid} {proc.status()} {proc.name()}")
            except psutil.NoSuchProcess:
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
