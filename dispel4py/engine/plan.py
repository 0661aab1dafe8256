"""The plan: the concrete form of a workflow graph for one run.

``make_plan`` validates the graph (ports, groupings, cycles, inputs) before anything starts,
then decides how many instances each PE gets and on which worker each instance runs
(``placement.py``). The plan is plain data keyed by PE ids, so it can be pickled and sent
to other processes or MPI ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dispel4py.core import GenericPE
from dispel4py.engine.inputs import InputValue, normalise_inputs
from dispel4py.engine.placement import Placement, place
from dispel4py.engine.routing import Grouping, parse_grouping
from dispel4py.errors import GraphError, UsageError, did_you_mean
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["Edge", "Plan", "make_plan"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Edge:
    src: str
    out: str
    dst: str
    inp: str
    grouping: Grouping


@dataclass
class Plan:
    order: list[str]  # PE ids, topologically sorted (ties keep insertion order)
    pes: dict[str, GenericPE]
    edges: list[Edge]
    placement: Placement
    inputs: dict[str, InputValue]  # provided inputs by PE id
    collect: frozenset[tuple[str, str]]  # (pe id, output) whose items are results
    descendants: dict[str, frozenset[str]] = field(default_factory=dict)

    # -- derived views -----------------------------------------------------------------
    @property
    def instances(self) -> dict[str, list[int]]:
        return self.placement.instances

    @property
    def num_workers(self) -> int:
        return self.placement.num_workers

    def pe_of(self, iid: int) -> str:
        return self.placement.pe_of[iid]

    def worker_of(self, iid: int) -> int:
        return self.placement.worker_of[iid]

    def hosted(self, worker: int) -> list[int]:
        """Instances on ``worker``, in topological order of their PEs."""
        rank = {pe: i for i, pe in enumerate(self.order)}
        mine = [i for i, w in enumerate(self.placement.worker_of) if w == worker]
        return sorted(mine, key=lambda i: (rank[self.placement.pe_of[i]], i))

    def eos_expected(self, iid: int) -> int:
        """End-of-stream markers instance ``iid`` waits for: one per (edge, source instance)."""
        pe = self.placement.pe_of[iid]
        return sum(len(self.instances[e.src]) for e in self.edges if e.dst == pe)

    def describe(self) -> str:
        """The original's ``Processes:`` line (instance ranges per PE)."""
        parts = []
        for pe, iids in self.instances.items():
            parts.append(f"'{pe}': range({iids[0]}, {iids[-1] + 1})")
        return "Processes: {" + ", ".join(parts) + "}"


def make_plan(
    graph: WorkflowGraph,
    inputs: Mapping[Any, Any] | None,
    num_workers: int,
    *,
    partitioned: bool = False,
    collect: Mapping[str, list[str]] | None = None,
    place_fn: Callable[..., Placement] = place,
) -> Plan:
    """Validate ``graph`` and build the plan for ``num_workers`` workers.

    ``place_fn`` lays out the instances (the static layout by default; the dynamic
    mappings pass theirs, see ``dynamic/layout.py``)."""
    if num_workers < 1:
        raise UsageError(f"the number of workers must be at least 1 (got {num_workers})")
    graph.flatten()
    pes = _pes(graph)
    edges = _edges(graph, pes)
    order = _topological_order(pes, edges)
    provided = normalise_inputs(graph, inputs)
    sources = [pe for pe in order if not any(e.dst == pe for e in edges)]
    if inputs is not None:
        for pe in sources:
            if pe not in provided:
                _log.warning(
                    "%s is a source PE and got no input; running it once with {} "
                    "(as dispel4py always has). Give it input with -d '{\"%s\": N}'.",
                    pe,
                    pe,
                )
    for pe in sources:
        provided.setdefault(pe, 1)
    placement = place_fn(
        order=list(pes),
        pes=pes,
        edges=[(e.src, e.dst, e.grouping) for e in edges],
        sources=sources,
        num_workers=num_workers,
        partitions=_partitions(graph, pes),
        force_partitioned=partitioned,
    )
    return Plan(
        order=order,
        pes=pes,
        edges=edges,
        placement=placement,
        inputs=provided,
        collect=_collect(pes, edges, collect),
        descendants=_descendants(order, edges),
    )


def _pes(graph: WorkflowGraph) -> dict[str, GenericPE]:
    pes: dict[str, GenericPE] = {}
    for node in graph.nodes:
        pe = node.obj
        if not isinstance(pe, GenericPE):
            raise GraphError(f"graph node {pe!r} is not a PE after flattening composites")
        if pe.id in pes and pes[pe.id] is not pe:
            raise GraphError(f"two PEs share the id '{pe.id}'; give one a different name")
        n = pe.numprocesses
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise GraphError(f"{pe.id}.numprocesses must be a whole number >= 1 (got {n!r})")
        pes[pe.id] = pe
    return pes


def _edges(graph: WorkflowGraph, pes: dict[str, GenericPE]) -> list[Edge]:
    edges = []
    for src, out, dst, inp in graph.connections:
        if out not in src.outputconnections:
            raise GraphError(
                f"unknown output '{out}' on {src.id} in {src.id}.{out} -> {dst.id}.{inp}"
                f"{did_you_mean(out, src.outputconnections)}; outputs are: "
                f"{', '.join(src.outputconnections) or '(none)'}"
            )
        if inp not in dst.inputconnections:
            raise GraphError(
                f"unknown input '{inp}' on {dst.id} in {src.id}.{out} -> {dst.id}.{inp}"
                f"{did_you_mean(inp, dst.inputconnections)}; inputs are: "
                f"{', '.join(dst.inputconnections) or '(none)'}"
            )
        grouping = parse_grouping(dst.inputconnections[inp].get("grouping"), dst.id, inp)
        edges.append(Edge(src.id, out, dst.id, inp, grouping))
    return edges


def _topological_order(pes: dict[str, GenericPE], edges: list[Edge]) -> list[str]:
    indegree = {pe: 0 for pe in pes}
    for e in edges:
        indegree[e.dst] += 1
    order: list[str] = []
    ready = [pe for pe in pes if indegree[pe] == 0]
    while ready:
        pe = ready.pop(0)
        order.append(pe)
        for e in edges:
            if e.src == pe:
                indegree[e.dst] -= 1
                if indegree[e.dst] == 0:
                    ready.append(e.dst)
    if len(order) < len(pes):
        stuck = [pe for pe in pes if pe not in order]
        raise GraphError(
            f"the workflow has a cycle through {', '.join(stuck)}; dispel4py runs directed "
            "acyclic graphs only"
        )
    return order


def _descendants(order: list[str], edges: list[Edge]) -> dict[str, frozenset[str]]:
    result: dict[str, set[str]] = {pe: set() for pe in order}
    for pe in reversed(order):
        for e in edges:
            if e.src == pe:
                result[pe] |= {e.dst} | result[e.dst]
    return {pe: frozenset(d) for pe, d in result.items()}


def _partitions(graph: WorkflowGraph, pes: dict[str, GenericPE]) -> list[list[str]] | None:
    declared = getattr(graph, "partitions", None)
    if not declared:
        return None
    partitions: list[list[str]] = []
    seen: set[str] = set()
    for part in declared:
        ids = []
        for pe in part:
            pe_id = pe.id if isinstance(pe, GenericPE) else str(pe)
            if pe_id not in pes:
                raise GraphError(f"graph.partitions names {pe_id}, which is not in the workflow")
            if pe_id in seen:
                raise GraphError(f"graph.partitions lists {pe_id} twice")
            seen.add(pe_id)
            ids.append(pe_id)
        partitions.append(ids)
    missing = [pe for pe in pes if pe not in seen]
    if missing:
        raise GraphError(f"graph.partitions does not place {', '.join(missing)}; add them to a partition")
    return partitions


def _collect(
    pes: dict[str, GenericPE], edges: list[Edge], collect: Mapping[str, list[str]] | None
) -> frozenset[tuple[str, str]]:
    if collect is None:
        connected = {(e.src, e.out) for e in edges}
        return frozenset(
            (pe_id, out)
            for pe_id, pe in pes.items()
            for out in pe.outputconnections
            if (pe_id, out) not in connected
        )
    result = set()
    for pe_id, outputs in collect.items():
        if pe_id not in pes:
            raise UsageError(f"resultmappings names {pe_id}, which is not a PE of this workflow")
        for out in outputs:
            if out not in pes[pe_id].outputconnections:
                raise UsageError(f"resultmappings: {pe_id} has no output '{out}'")
            result.add((pe_id, out))
    return frozenset(result)
