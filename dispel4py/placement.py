"""Placement: how many instances each PE gets and which worker hosts each instance.

Two layouts, as in the original fixed mappings (spec §2.3, §4.2):

* **one instance per worker** when the workers suffice: sources get 1 instance, explicit
  ``numprocesses > 1`` is exact, PEs left at 1 share the leftover workers
  (``int((n - sources) / (total - sources))`` each);
* **partitioned** when they do not (or with ``-s``): the non-source PEs are replicated on
  every worker (or ``graph.partitions`` is used), so every core works and ``-n`` smaller
  than the graph still runs. Explicit ``numprocesses`` stays exact in both layouts.

PEs whose results depend on how many copies run are never scaled: sources, ``single``,
``stateful``, and inputs grouped ``'all'`` or ``'global'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispel4py.routing import ALL, GLOBAL, Grouping

__all__ = ["Placement", "place"]


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
) -> Placement:
    fixed = {pe: _fixed_count(pe, pes[pe], edges, sources) for pe in order}
    total = len(sources) + sum(fixed[pe] or 1 for pe in order if pe not in sources)
    if total <= num_workers and not force_partitioned:
        return _one_per_worker(order, fixed, sources, num_workers, total)
    return _partitioned(order, fixed, edges, sources, num_workers, partitions)


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


def _one_per_worker(
    order: list[str], fixed: dict[str, int], sources: list[str], n: int, total: int
) -> Placement:
    share = max(1, int((n - len(sources)) / max(1, total - len(sources))))
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
