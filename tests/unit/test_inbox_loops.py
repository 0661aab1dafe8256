"""The specialised per-item path (engine/inbox.py, the writers' fast paths) behaves as the
general one: the same failure (PE, port, item), the same counts, the same round-robin order.

Each test runs a few small graphs on ``simple`` (the real executor, in this process); the
file takes about a second.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise
from typing import Any

import pytest

import dispel4py
from dispel4py.base import ConsumerPE, GenericPE, IterativePE, ProducerPE
from dispel4py.engine.routing import BroadcastRoute, FixedRoute, GroupByRoute, RoundRobinRoute
from dispel4py.engine.writers import BareLocalWriter, LocalWriter, SpreadWriter, Writer, make_writer
from dispel4py.errors import WorkflowFailed
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)

ITEMS = 3000  # more than a local inbox takes (1024) before it is drained inline


class Numbers(ProducerPE):
    def _process(self, inputs: Any) -> None:
        for i in range(ITEMS):
            self.write("output", i)


class Double(IterativePE):
    def _process(self, data: int) -> int:
        return 2 * data


class AlsoWrites(IterativePE):
    """Returns an item and writes another: the returned one goes through the loop's own
    writer code, the written one through the writer; both count."""

    def _process(self, data: int) -> int:
        self.write("output", -data)
        return data


class Total(ConsumerPE):
    def __init__(self) -> None:
        ConsumerPE.__init__(self)
        self._add_output("total")
        self.seen: list[int] = []

    def _process(self, data: int) -> None:
        self.seen.append(data)

    def _postprocess(self) -> None:
        self.write("total", (len(self.seen), sum(self.seen)))


class GenericOne(GenericPE):
    """One input, not a base class's process: the loop builds {port: item}."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input("values")
        self._add_output("output")

    def _process(self, inputs: dict[str, Any]) -> Any:
        return {"output": inputs["values"] + 1}


class FailsAt(GenericPE):
    """Fails on item ``bad`` of its input ``port``; ``inputs`` more declared (pairs if > 1)."""

    def __init__(self, port: str, bad: int, inputs: int = 1) -> None:
        GenericPE.__init__(self)
        self.port, self.bad = port, bad
        for name in [port] + [f"extra{i}" for i in range(inputs - 1)]:
            self._add_input(name)

    def _process(self, inputs: dict[str, Any]) -> None:
        if inputs.get(self.port) == self.bad:
            raise ValueError(f"bad item {self.bad}")


class IterFails(IterativePE):
    def _process(self, data: int) -> int:
        if data == 1500:
            raise ValueError("bad item")
        return data


class ConsumerFails(ConsumerPE):
    def _process(self, data: int) -> None:
        if data == 2500:
            raise ValueError("bad item")


def _chain(*pes: Any, ports: list[str] | None = None) -> WorkflowGraph:
    graph = WorkflowGraph()
    for i, (a, b) in enumerate(pairwise(pes)):
        graph.connect(a, "output", b, ports[i] if ports else "input")
    return graph


def test_chain_counts_and_totals_match_the_items() -> None:
    pes = [Numbers(), Double(), AlsoWrites(), GenericOne(), Total()]
    graph = _chain(*pes, ports=["input", "input", "values", "input"])
    result = dispel4py.run(graph, {pes[0]: 1}, "simple")
    rows = result.per_pe()
    # AlsoWrites: each item out twice (x and -x); GenericOne adds 1 to each
    expected = sum(2 * i + 1 for i in range(ITEMS)) + sum(-2 * i + 1 for i in range(ITEMS))
    assert result.items(pes[4], "total") == [(2 * ITEMS, expected)]
    assert [rows[pe.id]["items_in"] for pe in pes[1:]] == [ITEMS, ITEMS, 2 * ITEMS, 2 * ITEMS]
    assert [rows[pe.id]["items_out"] for pe in pes[:4]] == [ITEMS, ITEMS, 2 * ITEMS, 2 * ITEMS]


@pytest.mark.parametrize(
    ("sink", "port", "item"),
    [
        (lambda: IterFails(), "input", "1500"),  # iterative loop, local writer after it
        (lambda: ConsumerFails(), "input", "2500"),  # consumer loop
        (lambda: FailsAt("values", 2999), "values", "2999"),  # process({port: item}) on a bare inbox
        (lambda: FailsAt("values", 7, inputs=2), "values", "7"),  # pairs: two declared inputs
    ],
    ids=["iterative", "consumer", "generic", "pairs"],
)
def test_a_failing_item_is_named_with_its_pe_and_port(sink: Any, port: str, item: str) -> None:
    source, pe = Numbers(), sink()
    graph = _chain(source, pe, ports=[port])
    with pytest.raises(WorkflowFailed) as caught:
        dispel4py.run(graph, {source: 1}, "simple")
    error = caught.value
    assert (error.pe_id, error.phase, error.port) == (pe.id, "process", port)
    assert error.item_repr == item


def test_spread_writer_follows_the_round_robin_route() -> None:
    got: list[tuple[int, int]] = []
    puts = [lambda d, t=t: got.append((t, d)) for t in (4, 5, 6)]
    writer = SpreadWriter(RoundRobinRoute("input", [4, 5, 6], start=2), puts)
    route = RoundRobinRoute("input", [4, 5, 6], start=2)
    for i in range(7):
        writer.write(i)
    assert got == [(route.targets_for(i)[0], i) for i in range(7)]
    assert writer.count == 7


def _writer(routes: list[Any], results: list[Any] | None = None, bare: bool = True) -> Any:
    inboxes: list[deque | None] = [deque(), deque(), None]
    return make_writer(
        routes,
        results,
        local_inboxes=inboxes,
        deliver=lambda t, p, d: None,
        drain=lambda t: None,
        flush_results=lambda: None,
        limit=1024,
        byte_limit=1 << 20,
        bare=[bare] * 3,
        outboxes={},
    )


def test_make_writer_takes_a_fast_path_only_where_no_item_is_looked_at() -> None:
    assert type(_writer([FixedRoute("input", [0])])) is BareLocalWriter
    assert type(_writer([FixedRoute("input", [0])], bare=False)) is LocalWriter
    assert type(_writer([RoundRobinRoute("input", [0, 1])])) is SpreadWriter
    assert type(_writer([FixedRoute("input", [0])], results=[])) is Writer  # collected results
    assert type(_writer([BroadcastRoute("input", [0, 1])])) is Writer  # copies to several
    assert type(_writer([GroupByRoute("input", [0, 1], [0], "X")])) is Writer
    assert type(_writer([FixedRoute("input", [2])])) is Writer  # remote, and no outbox for it
    assert type(_writer([FixedRoute("input", [0]), FixedRoute("other", [1])])) is Writer
