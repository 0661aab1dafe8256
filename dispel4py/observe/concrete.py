"""The concrete picture of a run: one node per PE instance (``<pe id>@<instance>``) in a
cluster per worker (MPI rank), edges along every path the engine routes. It takes a plan,
made by whoever asks (``dispel4py draw --concrete``, the timed mappings), and runs nothing.
"""

from __future__ import annotations

from typing import Any

from dispel4py.drawing import Cluster, Drawing, Edge, Node
from dispel4py.engine.placement import SHARED
from dispel4py.engine.plan import Plan
from dispel4py.engine.routing import GROUP_BY
from dispel4py.engine.wiring import make_routes

__all__ = ["communication", "concrete_drawing", "concrete_edges"]


def communication(grouping: Any) -> str:
    """The original's name for how an edge routes: shuffle, all, global or the group-by keys."""
    return str(list(grouping.keys)) if grouping.kind == GROUP_BY else grouping.kind


def concrete_edges(plan: Plan) -> list[tuple[int, int, Any]]:
    """``(source instance, target instance, edge)`` for every path an item may take, as the
    engine routes it (a shuffle prefers local targets; ``'global'`` reaches instance 0)."""
    found: list[tuple[int, int, Any]] = []
    seen: set[tuple[int, int, str, str]] = set()
    for pe_id in plan.order:
        outputs = list(dict.fromkeys(e.out for e in plan.edges if e.src == pe_id))
        for iid in plan.instances[pe_id]:
            for out in outputs:
                edges = [e for e in plan.edges if e.src == pe_id and e.out == out]
                routes = make_routes(plan, plan.worker_of(iid), iid, out)
                for edge, route in zip(edges, routes):
                    for target in route.targets:
                        key = (iid, target, edge.out, edge.inp)
                        if key not in seen:
                            seen.add(key)
                            found.append((iid, target, edge))
    return found


def concrete_drawing(plan: Plan, worker_word: str = "worker") -> Drawing:
    """One node per instance (``<pe id>@<instance>``) in a cluster per worker."""
    drawing = Drawing()
    workers = sorted(set(plan.placement.worker_of))
    for worker in workers:
        label = "shared: any worker" if worker == SHARED else f"{worker_word} {worker}"
        drawing.clusters.append(Cluster(f"cluster_w{worker if worker >= 0 else 'shared'}", label))
    cluster_of = {w: c.key for w, c in zip(workers, drawing.clusters)}
    for pe_id in plan.order:
        pe = plan.pes[pe_id]
        for iid in plan.instances[pe_id]:
            drawing.nodes.append(
                Node(
                    f"i{iid}",
                    f"{pe_id}@{iid}",
                    list(pe.inputconnections),
                    list(pe.outputconnections),
                    cluster_of[plan.worker_of(iid)],
                )
            )
    for src, dst, edge in concrete_edges(plan):  # every copy says its grouping: an unlabelled
        label = communication(edge.grouping)  # edge would read as a plain shuffle
        drawing.edges.append(
            Edge(f"i{src}", edge.out, f"i{dst}", edge.inp, "" if label == "shuffle" else label)
        )
    return drawing
