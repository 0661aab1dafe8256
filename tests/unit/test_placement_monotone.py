"""More workers never give a PE fewer instances (engine/placement.py), on random graphs.

Random DAGs of 1-12 PEs with random groupings, explicit ``numprocesses``, ``single`` /
``stateful`` flags and sometimes declared partitions, planned for every n from 1 to 40,
with and without ``-s``: for every PE, instances(n') >= instances(n) whenever n' > n. The
original's rule (``original_layout``) breaks this, which the last test shows, so the
property is not vacuous.
"""

from __future__ import annotations

import itertools
import os
import random
from types import SimpleNamespace

import pytest

from dispel4py.engine.placement import place
from dispel4py.engine.routing import ALL, GLOBAL, GROUP_BY, SHUFFLE, Grouping

pytestmark = pytest.mark.timeout(120)

GRAPHS = 300
MAX_N = 40
_KINDS = (SHUFFLE, GROUP_BY, ALL, GLOBAL)


def _grouping(rng: random.Random) -> Grouping:
    kind = rng.choice(_KINDS)
    return Grouping(kind, (0,) if kind == GROUP_BY else ())


def random_graph(rng: random.Random) -> dict:
    """Keyword arguments of :func:`place` for a random DAG (PE ids in topological order)."""
    order = [f"pe{i}" for i in range(rng.randint(1, 12))]
    edges = []
    for k, dst in enumerate(order[1:], start=1):
        for src in rng.sample(order[:k], rng.randint(0, min(3, k))):
            edges.append((src, dst, _grouping(rng)))
    sources = [pe for pe in order if not any(d == pe for _, d, _ in edges)]
    pes = {
        pe: SimpleNamespace(
            numprocesses=rng.choice([1, 1, 1, 2, 3]),
            single=rng.random() < 0.1,
            stateful=rng.random() < 0.1,
        )
        for pe in order
    }
    partitions = None
    if rng.random() < 0.3:  # declared partitions: consecutive runs of the topological order
        inner = range(1, len(order))
        bounds = [0, *sorted(rng.sample(inner, rng.randint(0, len(inner)))), len(order)]
        partitions = [order[a:b] for a, b in itertools.pairwise(bounds)]
    return {"order": order, "pes": pes, "edges": edges, "sources": sources, "partitions": partitions}


def counts(graph: dict, n: int, **options: bool) -> dict[str, int]:
    placement = place(num_workers=n, **graph, **options)
    assert all(0 <= w < n for w in placement.worker_of)
    return {pe: len(iids) for pe, iids in placement.instances.items()}


@pytest.mark.parametrize("force_partitioned", [False, True])
def test_no_pe_gets_fewer_instances_with_more_workers(force_partitioned: bool) -> None:
    seed = int(os.environ.get("D4PY_TEST_SEED", random.randrange(2**32)))
    print(f"seed {seed} (rerun with D4PY_TEST_SEED={seed})")
    rng = random.Random(seed)
    for case in range(GRAPHS):
        graph = random_graph(rng)
        previous = counts(graph, 1, force_partitioned=force_partitioned)
        for n in range(2, MAX_N + 1):
            now = counts(graph, n, force_partitioned=force_partitioned)
            fewer = {pe: (previous[pe], now[pe]) for pe in now if now[pe] < previous[pe]}
            assert not fewer, f"seed {seed}, case {case}, n {n - 1} -> {n}: {fewer} ({graph})"
            previous = now


def test_the_original_layout_is_not_monotone() -> None:
    """Why it is behind --original-layout: a 4-PE chain gets 6 instances of its scalable PEs
    at -n 6 and 2 at -n 7."""
    shuffle = Grouping(SHUFFLE, ())
    graph = {
        "order": ["a", "b", "c", "d"],
        "pes": {pe: SimpleNamespace(numprocesses=1, single=False, stateful=False) for pe in "abcd"},
        "edges": [("a", "b", shuffle), ("b", "c", shuffle), ("c", "d", shuffle)],
        "sources": ["a"],
        "partitions": None,
    }
    assert counts(graph, 6, force_partitioned=False, original_layout=True)["b"] == 6
    assert counts(graph, 7, force_partitioned=False, original_layout=True)["b"] == 2
    assert counts(graph, 7, force_partitioned=False)["b"] == 7
