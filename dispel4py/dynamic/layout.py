"""Where work runs in the dynamic mappings: which PEs are pinned and which are shared.

A PE is **pinned** when its results depend on which copy sees which item: a source, a PE
with any grouped input (group-by, ``'all'``, ``'global'``), one marked ``stateful`` or
``single``, or one that asks for an exact ``numprocesses > 1`` (that many instances, each
with its own state and ``postprocess``, as on every other mapping). Each of its instances
lives on one worker, with its own queue, and gets its items through the same routing as
the static mappings (same stable hash). Every other PE
is **shared**: it has one queue that any worker takes tasks from, and each worker runs its
own copy of the PE (made on its first task, ``preprocess`` before its first item).

The layout is a :class:`~dispel4py.engine.placement.Placement`, so the plan, routing and writers
work unchanged: a shared PE has one *virtual* instance whose worker is ``SHARED`` (-1);
its instance id names its queue. Instance counts: a source, a ``stateful``/``single`` PE
or one with an ``'all'``/``'global'`` input has 1; an explicit ``numprocesses > 1`` is
exact; a group-by PE has one instance per worker, so its keys spread over all of them.
Pinned instances are laid over the workers round-robin.

A shared PE with several inputs is said at the start of a run (:func:`shared_combiners`):
if it combines them (the original's split/merge examples keep the parts in an attribute),
its copies each see some parts and none writes the whole, silently; declaring it
``stateful`` pins it.
"""

from __future__ import annotations

import collections
from typing import Any

from dispel4py.engine.placement import SHARED, Placement
from dispel4py.engine.routing import ALL, GLOBAL, GROUP_BY, Grouping

__all__ = ["SHARED", "dynamic_place", "is_pinned_pe", "shared_combiners"]


def is_pinned_pe(pe_id: str, pe: Any, edges: list[tuple[str, str, Grouping]], sources: list[str]) -> bool:
    grouped = any(dst == pe_id and g.kind in (GROUP_BY, ALL, GLOBAL) for _, dst, g in edges)
    marked = getattr(pe, "stateful", False) or getattr(pe, "single", False)
    return pe_id in sources or grouped or bool(marked) or pe.numprocesses > 1


def _pinned_count(pe_id: str, pe: Any, edges: list[tuple[str, str, Grouping]], n: int) -> int:
    """As the static layout: exact ``numprocesses``, else 1 for PEs whose results depend on
    how many copies run, else one per worker (group-by PEs)."""
    if pe.numprocesses > 1:
        return int(pe.numprocesses)
    broadcast = any(dst == pe_id and g.kind in (ALL, GLOBAL) for _, dst, g in edges)
    single = getattr(pe, "stateful", False) or getattr(pe, "single", False)
    return 1 if broadcast or single else n


def dynamic_place(
    *,
    order: list[str],
    pes: dict[str, Any],
    edges: list[tuple[str, str, Grouping]],
    sources: list[str],
    num_workers: int,
    partitions: list[list[str]] | None = None,
    force_partitioned: bool = False,
) -> Placement:
    """The dynamic layout (same signature as :func:`dispel4py.engine.placement.place`)."""
    instances: dict[str, list[int]] = {}
    pe_of: list[str] = []
    index_of: list[int] = []
    worker_of: list[int] = []
    slot = 0
    for pe_id in order:
        pinned = is_pinned_pe(pe_id, pes[pe_id], edges, sources)
        count = 1 if pe_id in sources or not pinned else _pinned_count(pe_id, pes[pe_id], edges, num_workers)
        instances[pe_id] = list(range(len(pe_of), len(pe_of) + count))
        for k in range(count):
            pe_of.append(pe_id)
            index_of.append(k)
            if pinned:
                worker_of.append(slot % num_workers)
                slot += 1
            else:
                worker_of.append(SHARED)
    return Placement(instances, pe_of, index_of, worker_of, num_workers, False)


def shared_combiners(plan: Any) -> list[tuple[str, list[str], list[str]]]:
    """The shared PEs (run as copies, one per worker that takes their tasks) that look like
    they combine items across calls: more than one connected input, and an attribute of
    their own holding a container (a list, dict, set ...) they could gather items in.
    Returned with those inputs and attributes. A merge or a join needs one instance to
    see every item, which a copy does not, unless it is declared ``stateful`` (pinned); a
    PE that says ``stateful = False`` keeps no state by its own word and is left out. (A
    heuristic: a PE counting in an ``int`` is not seen, and a container may be read-only.)"""
    found = []
    for pe_id in plan.order:
        pe = plan.pes[pe_id]
        (first, *_) = plan.placement.instances[pe_id]
        if plan.placement.worker_of[first] != SHARED or getattr(pe, "stateful", None) is False:
            continue
        inputs = sorted({e.inp for e in plan.edges if e.dst == pe_id})
        gathering = sorted(
            name
            for name, value in vars(pe).items()
            if name not in _ENGINE_ATTRIBUTES and isinstance(value, _CONTAINERS)
        )
        if len(inputs) > 1 and gathering:
            found.append((pe_id, inputs, gathering))
    return found


_CONTAINERS = (list, dict, set, bytearray, collections.deque)
# what GenericPE, the engine and ProvenanceType keep on a PE (not the user's state)
_ENGINE_ATTRIBUTES = frozenset(
    ("inputconnections", "outputconnections", "pickleIgnore", "wrapper", "parameters", "ns")
)
