"""Which static layout a graph gets for -n N with --original-layout (placement.py's rule
for the original's layout), over several graphs; without it, every graph is partitioned.

One per worker only when it gives every scalable PE at least two instances; otherwise the
partitioned layout replicates the scalable PEs on every worker. Fixed counts (sources,
single/stateful, 'all'/'global' inputs, explicit numprocesses) are the same in both.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import pytest

from dispel4py.engine.placement import place
from dispel4py.engine.plan import Plan
from dispel4py.engine.plan import make_plan as default_plan
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_ids")]

WORKERS = [1, 2, 3, 4, 8, 16]


def make_plan(*args, **kwargs) -> Plan:
    return default_plan(*args, place_fn=functools.partial(place, original_layout=True), **kwargs)


def chain(*pes) -> WorkflowGraph:
    graph = WorkflowGraph()
    for src, dst in itertools.pairwise(pes):
        graph.connect(src, "output", dst, "input")
    return graph


def galaxy_like() -> WorkflowGraph:
    """source -> slow -> cheap -> sink, every non-source PE scalable (the reported case)."""
    return chain(t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut(), t.TestOneInOneOut())


def three_pe_chain() -> WorkflowGraph:
    return chain(t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut())


def stateful_sink() -> WorkflowGraph:
    sink = t.TestOneInOneOut()
    sink.stateful = True
    return chain(t.TestProducer(), t.TestOneInOneOut(), sink)


def global_sink() -> WorkflowGraph:
    sink = t.TestOneInOneOut()
    sink.inputconnections["input"]["grouping"] = "global"
    return chain(t.TestProducer(), t.TestOneInOneOut(), sink)


def grouped_counter() -> WorkflowGraph:
    counter = t.TestOneInOneOut()
    counter.inputconnections["input"]["grouping"] = [0]
    return chain(t.TestProducer(), counter)


def explicit_then_scalable() -> WorkflowGraph:
    explicit = t.TestOneInOneOut()
    explicit.numprocesses = 3
    return chain(t.TestProducer(), explicit, t.TestOneInOneOut())


def all_fixed() -> WorkflowGraph:
    first, second = t.TestOneInOneOut(), t.TestOneInOneOut()
    first.numprocesses = second.numprocesses = 2
    second.inputconnections["input"]["grouping"] = "all"
    return chain(t.TestProducer(), first, second)


def two_sources() -> WorkflowGraph:
    graph = WorkflowGraph()
    merge = t.TestTwoInOneOut()
    graph.connect(t.TestProducer(), "output", merge, "input0")
    graph.connect(t.TestProducer(), "output", merge, "input1")
    graph.connect(merge, "output", t.TestOneInOneOut(), "input")
    return graph


def counts_in_order(plan: Plan) -> list[int]:
    return [len(iids) for iids in plan.instances.values()]


# per graph: the layouts for -n 1, 2, 3, 4, 8, 16 ("P" partitioned, "O" one per worker) and
# the instances of each PE (in graph order) for each -n
CASES: dict[str, tuple[Callable[[], WorkflowGraph], str, list[list[int]]]] = {
    # total 4: one each at -n 4 (the 54 s run) is now partitioned; share 2 from -n 7
    "galaxy_like": (
        galaxy_like,
        "PPPPOO",
        [[1, 1, 1, 1], [1, 2, 2, 2], [1, 3, 3, 3], [1, 4, 4, 4], [1, 2, 2, 2], [1, 5, 5, 5]],
    ),
    "three_pe_chain": (
        three_pe_chain,
        "PPPPOO",
        [[1, 1, 1], [1, 2, 2], [1, 3, 3], [1, 4, 4], [1, 3, 3], [1, 7, 7]],
    ),
    "stateful_sink": (
        stateful_sink,
        "PPPPOO",
        [[1, 1, 1], [1, 2, 1], [1, 3, 1], [1, 4, 1], [1, 3, 1], [1, 7, 1]],
    ),
    "global_sink": (
        global_sink,
        "PPPPOO",
        [[1, 1, 1], [1, 2, 1], [1, 3, 1], [1, 4, 1], [1, 3, 1], [1, 7, 1]],
    ),
    # group-by is scalable: keys are hashed over however many instances there are
    "grouped_counter": (grouped_counter, "PPOOOO", [[1, 1], [1, 2], [1, 2], [1, 3], [1, 7], [1, 15]]),
    # total 1 + 3 + 1 = 5: share int(7 / 4) = 1 at -n 8, int(15 / 4) = 3 at -n 16
    "explicit_then_scalable": (
        explicit_then_scalable,
        "PPPPPO",
        [[1, 3, 1], [1, 3, 2], [1, 3, 3], [1, 3, 4], [1, 3, 8], [1, 3, 3]],
    ),
    # nothing to scale: one per worker as soon as the 5 instances fit
    "all_fixed": (all_fixed, "PPPPOO", [[1, 2, 2]] * 6),
    # two sources (graph order: source, merge, source, sink): share int((n - 2) / 2)
    "two_sources": (
        two_sources,
        "PPPPOO",
        [[1, 1, 1, 1], [1, 2, 1, 2], [1, 3, 1, 3], [1, 4, 1, 4], [1, 3, 1, 3], [1, 7, 1, 7]],
    ),
}
PARAMS = [
    pytest.param(build, n, expected, layout == "P", id=f"{name}-n{n}")
    for name, (build, layouts, rows) in CASES.items()
    for n, layout, expected in zip(WORKERS, layouts, rows, strict=True)
]


@pytest.mark.parametrize(("build", "n", "expected", "partitioned"), PARAMS)
def test_instances_and_layout(build, n, expected, partitioned):
    plan = make_plan(build(), None, n)
    assert counts_in_order(plan) == expected
    assert plan.placement.partitioned is partitioned


@pytest.mark.parametrize(("build", "n", "expected", "partitioned"), PARAMS)
def test_workers_are_used_as_the_layout_says(build, n, expected, partitioned):
    plan = make_plan(build(), None, n)
    worker_of = plan.placement.worker_of
    if not partitioned:
        assert worker_of == list(range(sum(expected)))
        assert plan.num_workers == sum(expected) <= n
        return
    assert set(worker_of) <= set(range(n))
    assert plan.num_workers == (n if n in expected[1:] else max(worker_of) + 1)
    sources = [pe for pe in plan.order if not any(e.dst == pe for e in plan.edges)]
    for pe, iids in plan.instances.items():
        hosts = [worker_of[i] for i in iids]
        if pe in sources:
            assert hosts == [0]
        elif len(iids) == n:  # a scalable PE: one instance on every worker
            assert sorted(hosts) == list(range(n)), pe


@pytest.mark.parametrize("n", WORKERS)
@pytest.mark.parametrize("build", [galaxy_like, three_pe_chain, stateful_sink, explicit_then_scalable])
def test_never_fewer_instances_than_the_original_formula(build, n):
    """Where the original (spec §2.3) ran, a PE now has at least as many instances."""
    graph = build()
    plan = make_plan(graph, None, n)
    sources = [pe for pe in plan.order if not any(e.dst == pe for e in plan.edges)]
    fixed = {pe: len(plan.instances[pe]) for pe in plan.order if not _scalable(plan, pe, sources)}
    total = len(sources) + sum(fixed.get(pe, 1) for pe in plan.order if pe not in sources)
    if total > n:
        return  # the original failed ("Graph is larger than job size")
    share = int((n - len(sources)) / max(1, total - len(sources)))
    for pe in plan.order:
        original = fixed.get(pe, share)
        assert len(plan.instances[pe]) >= original, pe


def _scalable(plan: Plan, pe: str, sources: list[str]) -> bool:
    obj = plan.pes[pe]
    grouped = any(e.dst == pe and e.grouping.kind in ("all", "global") for e in plan.edges)
    return not (pe in sources or obj.numprocesses > 1 or grouped or getattr(obj, "stateful", False))


def test_the_reported_case_runs_the_slow_stage_on_every_worker():
    graph = galaxy_like()
    assert make_plan(graph, None, 4).describe() == (
        "Processes: {'TestProducer0': range(0, 1), 'TestOneInOneOut1': range(1, 5), "
        "'TestOneInOneOut2': range(5, 9), 'TestOneInOneOut3': range(9, 13)}"
    )


def test_share_reaching_two_returns_to_the_original_layout():
    """Kept for the original's Processes: lines; -s stays partitioned (placement.py, rule 3)."""
    assert counts_in_order(make_plan(galaxy_like(), None, 6)) == [1, 6, 6, 6]
    plan = make_plan(galaxy_like(), None, 7)
    assert not plan.placement.partitioned
    assert counts_in_order(plan) == [1, 2, 2, 2]
    assert counts_in_order(make_plan(galaxy_like(), None, 7, partitioned=True)) == [1, 7, 7, 7]


def test_declared_partitions_are_used_when_the_rule_picks_partitioned():
    prod, slow, cheap = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph = chain(prod, slow, cheap)
    graph.partitions = [[prod], [slow, cheap]]
    plan = make_plan(graph, None, 3)
    assert plan.placement.partitioned
    assert counts_in_order(plan) == [1, 2, 2]  # the fed part gets the n - 1 non-source workers


def test_single_pe_is_fixed_in_both_layouts():
    single = t.TestOneInOneOut()
    single.single = True
    graph = chain(t.TestProducer(), single, t.TestOneInOneOut())
    assert counts_in_order(make_plan(graph, None, 3)) == [1, 1, 3]
    assert counts_in_order(make_plan(graph, None, 16)) == [1, 1, 7]


@pytest.mark.parametrize("n", WORKERS)
def test_without_the_option_the_galaxy_like_graph_is_partitioned_on_every_worker(n):
    plan = default_plan(galaxy_like(), None, n)
    assert plan.placement.partitioned
    assert counts_in_order(plan) == [1, n, n, n]
