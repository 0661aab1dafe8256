"""Placement: how many instances each PE gets and which worker hosts each instance.

Two layouts, as in the original fixed mappings (spec §2.3, §4.2):

* **one instance per worker**: sources get 1 instance, explicit ``numprocesses > 1`` is
  exact, and the *scalable* PEs (the rest, below) share the leftover workers, ``share =
  int((n - sources) / (total - sources))`` instances each, every instance on a worker of
  its own (``total`` counts sources, explicit counts and 1 for every other PE);
* **partitioned**: worker 0 hosts the sources and every worker hosts one instance of each
  scalable PE (or a replica of each ``graph.partitions`` part), so a scalable PE runs on
  all ``n`` workers. Fixed counts stay exact, their instances laid over the workers.

Which one, for ``n`` workers: **partitioned**, unless nothing is scalable and the instances
fit (then one per worker: the counts are fixed either way, and each instance gets a worker
of its own), or ``original_layout`` asks for the original's rule (``--original-layout`` on
the static mappings):

1. ``-s`` (``force_partitioned``), or ``total > n`` (too few workers for one each):
   partitioned, as in the original.
2. The workers suffice but ``share < 2`` while some PE is scalable: partitioned (one per
   worker would run a slow scalable PE in one process).
3. Otherwise one per worker, the original's layout, so its ``Processes:`` lines (spec
   §2.3 worked examples) are unchanged.

Why partitioned by default: it is the only one of the two whose instance counts never fall
as ``n`` grows (a scalable PE gets ``n`` instances, or ``n`` shared over the declared
partitions; fixed counts stay fixed). The original's rule switches layouts where ``share``
first reaches 2 (``n = sources + 2 x (total - sources)``), and a scalable PE drops from
``n - 1`` instances to 2 there: the galaxy workflow with a 50 ms stage took 15.7 s at
``multi -n 4`` and 27.5 s at ``-n 8``. ``tests/unit/test_placement_monotone.py`` checks the
property on random graphs.

Scalable means the instance count may follow the workers: not a source, not ``single`` or
``stateful``, no input grouped ``'all'`` or ``'global'``, ``numprocesses`` not set above 1.
Group-by inputs are scalable (the routing hashes keys over however many instances exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispel4py.engine.routing import ALL, GLOBAL, Grouping

__all__ = ["SHARED", "Placement", "place"]

SHARED = -1  # the worker of a virtual instance that any worker may run (the dynamic layout's shared PEs)

# Instances each scalable PE must get for the one-per-worker layout to be used (rule 2).
_MIN_SHARE = 2


@dataclass
class Placement:
    instances: dict[str, list[int]]  # PE id -> instance ids (contiguous, in graph order)
    pe_of: list[str]  # instance id -> PE id
    index_of: list[int]  # instance id -> index among its PE's instances
    worker_of: list[int]  # instance id -> worker
    num_workers: int
    partitioned: bool


def place(
    *,
    order: list[str],
    pes: dict[str, Any],
    edges: list[tuple[str, str, Grouping]],
    sources: list[str],
    num_workers: int,
    partitions: list[list[str]] | None,
    force_partitioned: bool,
    original_layout: bool = False,
) -> Placement:
    """The static layout: partitioned, or with ``original_layout`` the original's rule."""
    fixed = {pe: _fixed_count(pe, pes[pe], edges, sources) for pe in order}
    total = len(sources) + sum(fixed[pe] or 1 for pe in order if pe not in sources)
    scalable = any(count == 0 for count in fixed.values())
    share = _share(num_workers, len(sources), total)
    one_each = not force_partitioned and total <= num_workers and (original_layout or not scalable)
    if not one_each or (scalable and share < _MIN_SHARE):
        return _partitioned(order, fixed, edges, sources, num_workers, partitions)
    return _one_per_worker(order, fixed, share)


def _share(n: int, n_sources: int, total: int) -> int:
    """Instances of each scalable PE in the one-per-worker layout (the original's formula)."""
    return max(1, int((n - n_sources) / max(1, total - n_sources)))


def _fixed_count(pe_id: str, pe: Any, edges: list[tuple[str, str, Grouping]], sources: list[str]) -> int:
    """The exact instance count of a PE, or 0 when it may be scaled to the workers."""
    if pe_id in sources:
        return 1
    if pe.numprocesses > 1:
        return int(pe.numprocesses)
    broadcast = any(dst == pe_id and g.kind in (ALL, GLOBAL) for _, dst, g in edges)
    if getattr(pe, "single", False) or getattr(pe, "stateful", False) or broadcast:
        return 1
    return 0


def _one_per_worker(order: list[str], fixed: dict[str, int], share: int) -> Placement:
    counts = {pe: fixed[pe] or share for pe in order}
    instances, pe_of, index_of = _number(order, counts)
    return Placement(instances, pe_of, index_of, list(range(len(pe_of))), len(pe_of), False)


def _partitioned(
    order: list[str],
    fixed: dict[str, int],
    edges: list[tuple[str, str, Grouping]],
    sources: list[str],
    n: int,
    partitions: list[list[str]] | None,
) -> Placement:
    if partitions is None:
        chain = [pe for pe in order if pe not in sources]
        parts = [p for p in (list(sources), chain) if p]
        replicas = [1 if p is parts[0] and sources else n for p in parts]
    else:
        parts = partitions
        fed_from_outside = [any(dst in part and src not in part for src, dst, _ in edges) for part in parts]
        n_sources = fed_from_outside.count(False)
        share = max(1, (n - n_sources) // max(1, len(parts) - n_sources))
        replicas = [share if fed else 1 for fed in fed_from_outside]
    # lay the partition replicas over the workers round-robin
    workers_of_part: list[list[int]] = []
    slot = 0
    for count in replicas:
        workers_of_part.append([(slot + r) % n for r in range(count)])
        slot += count
    part_of = {pe: i for i, part in enumerate(parts) for pe in part}
    counts = {pe: fixed[pe] or len(workers_of_part[part_of[pe]]) for pe in order}
    instances, pe_of, index_of = _number(order, counts)
    worker_of = [0] * len(pe_of)
    for pe, iids in instances.items():
        hosts = workers_of_part[part_of[pe]]
        for k, iid in enumerate(iids):
            worker_of[iid] = hosts[k % len(hosts)]
    used = max(worker_of) + 1 if worker_of else 1
    return Placement(instances, pe_of, index_of, worker_of, used, True)


def _number(order: list[str], counts: dict[str, int]) -> tuple[dict[str, list[int]], list[str], list[int]]:
    instances: dict[str, list[int]] = {}
    pe_of: list[str] = []
    index_of: list[int] = []
    for pe in order:
        start = len(pe_of)
        instances[pe] = list(range(start, start + counts[pe]))
        pe_of.extend([pe] * counts[pe])
        index_of.extend(range(counts[pe]))
    return instances, pe_of, index_of
