"""The specialised per-item path (engine/inbox.py, the writers' fast paths) behaves as the
general one: the same failure (PE, port, item), the same counts, the same round-robin order.

Each test runs a few small graphs on ``simple`` (the real executor, in this process), or one
writer alone; the file takes about two seconds.
"""

from __future__ import annotations

import time
from collections import deque
from itertools import pairwise
from typing import Any

import pytest

import dispel4py
from dispel4py.base import ConsumerPE, GenericPE, IterativePE, ProducerPE
from dispel4py.engine.routing import BroadcastRoute, FixedRoute, GroupByRoute, RoundRobinRoute
from dispel4py.engine.writers import (
    QUICK_S,
    BareLocalWriter,
    BufferSpreadWriter,
    LocalWriter,
    Outbox,
    SpreadWriter,
    Writer,
    make_writer,
)
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
    assert type(_writer([RoundRobinRoute("input", [0, 1])])) is BufferSpreadWriter  # bare inboxes
    assert type(_writer([RoundRobinRoute("input", [0, 1])], bare=False)) is SpreadWriter  # pairs
    assert type(_writer([FixedRoute("input", [0])], results=[])) is Writer  # collected results
    assert type(_writer([BroadcastRoute("input", [0, 1])])) is Writer  # copies to several
    assert type(_writer([GroupByRoute("input", [0, 1], [0], "X")])) is Writer
    assert type(_writer([FixedRoute("input", [2])])) is Writer  # remote, and no outbox for it
    assert type(_writer([FixedRoute("input", [0]), FixedRoute("other", [1])])) is Writer


# -- pe.write straight to the writer (wiring.install_pe_write) ---------------------------------
class TwoOutputs(ProducerPE):
    """Writes to its main output (with provenance-style keywords, which a run without a
    recorder ignores) and to a second one; records whether ``write`` was the fast one."""

    fast: list[bool] = []  # per call (the run's PE objects are copies: kept on the class)

    def __init__(self) -> None:
        ProducerPE.__init__(self)
        self._add_output("odd")

    def _process(self, inputs: Any) -> None:
        TwoOutputs.fast.append("write" in vars(self))
        for i in range(ITEMS):
            if i % 2:
                self.write("odd", i)
            else:
                self.write("output", i, metadata={"i": i}, location="mem")


class OwnWrite(Numbers):
    """A PE with its own ``write``: the engine leaves it alone."""

    def write(self, name: str, data: Any, **kwargs: Any) -> None:
        GenericPE.write(self, name, data + 1000)


class WritesNowhere(ProducerPE):
    def _process(self, inputs: Any) -> None:
        self.write("output", 1)
        self.write("nowhere", 2)


def test_pe_write_reaches_every_output_and_is_removed_after_the_run() -> None:
    TwoOutputs.fast = []
    source, evens, odds = TwoOutputs(), Total(), Total()
    graph = WorkflowGraph()
    graph.connect(source, "output", evens, "input")
    graph.connect(source, "odd", odds, "input")
    result = dispel4py.run(graph, {source: 1}, "simple")
    assert result.items(evens, "total") == [(ITEMS // 2, sum(range(0, ITEMS, 2)))]
    assert result.items(odds, "total") == [(ITEMS // 2, sum(range(1, ITEMS, 2)))]
    assert TwoOutputs.fast == [True]  # during the run, write was the writer's own
    assert result.per_pe()[source.id]["items_out"] == ITEMS


def test_a_pe_with_its_own_write_keeps_it() -> None:
    source, sink = OwnWrite(), Total()
    result = dispel4py.run(_chain(source, sink), {source: 1}, "simple")
    assert result.items(sink, "total") == [(ITEMS, sum(range(1000, 1000 + ITEMS)))]


def test_a_write_to_an_undeclared_output_names_the_pe_and_its_outputs() -> None:
    source, sink = WritesNowhere(), Total()
    with pytest.raises(WorkflowFailed) as caught:
        dispel4py.run(_chain(source, sink), {source: 1}, "simple")
    assert caught.value.pe_id == source.id
    assert "Unknown output connection nowhere" in str(caught.value)
    assert "outputs are: output" in str(caught.value)
    assert "write" not in vars(source)


# -- size sampling restarts when the executor has drained an inbox ----------------------------
MB = 1 << 20


class SmallThenLarge(ProducerPE):
    """1024 ints (a full inbox, drained at once), then 40 items of 1 MB; ``written`` counts them."""

    written = 0

    def _process(self, inputs: Any) -> None:
        for i in range(1024 + 40):
            SmallThenLarge.written += 1
            self.write("output", i if i < 1024 else bytes(MB))


class Pass(IterativePE):
    def _process(self, data: Any) -> Any:
        return data


class Occupancy(ConsumerPE):
    """The most 1 MB items written and not yet taken (in both inboxes, plus this one)."""

    seen = 0
    most = 0

    def _process(self, data: Any) -> None:
        Occupancy.seen += 1
        if type(data) is bytes:  # every int was taken before (the inboxes are FIFO)
            Occupancy.most = max(Occupancy.most, SmallThenLarge.written - Occupancy.seen + 1)


def test_the_first_large_item_after_a_drain_is_sampled() -> None:
    """The 1024th int fills the inboxes, which are drained; the first 1 MB item after that must
    be sampled at once, so each inbox is drained at its byte limit (16 MB: 15 such items), not
    after all 40 of them."""
    SmallThenLarge.written, Occupancy.seen, Occupancy.most = 0, 0, 0
    source, sink = SmallThenLarge(), Occupancy()
    dispel4py.run(_chain(source, Pass(), sink), {source: 1}, "simple")
    assert Occupancy.seen == 1064
    assert Occupancy.most <= 2 * 16, Occupancy.most


# -- an outbox looks at the clock on every put while items come slowly -------------------------
def test_an_outbox_ships_a_slow_producers_items_on_every_put_and_a_fast_ones_within_64() -> None:
    flushes: list[int] = []
    outbox = Outbox(7, "input", 1024, 1 << 20, lambda t, p: None, lambda: flushes.append(len(box)), [0.0])
    box = outbox.items  # the deadline (0.0) has passed: every look at the clock flushes
    for i in range(5):
        time.sleep(2 * QUICK_S)  # slow: a sleep never ends early, so each put looks
        outbox.put(i)
    assert flushes == [1, 2, 3, 4, 5]
    flushes.clear()
    for i in range(5, 1000):
        outbox.put(i)
    looks = [n - 5 for n in flushes]  # how many fast items had come at each look
    assert looks and looks[0] <= 2 and all(b - a <= 64 for a, b in pairwise(looks)), looks
    assert 995 - looks[-1] < 64
