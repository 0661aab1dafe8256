"""Provenance leaves the run as it was: the user's items in results and group-by keys, no
class patched, no PE made stateful, every start method; a record JSON cannot write is
written with repr() and counted in one warning; ``s-prov:sel-rules`` keeps what it selects;
a long accumulation stays bounded in memory."""

from __future__ import annotations

import glob
import logging
import os
import random
import tempfile

import pytest
from _helpers import WORKFLOWS, cli, run
from prov_support import lineage_of, records

import dispel4py
from dispel4py.base import IterativePE, ProducerPE
from dispel4py.core import GenericPE
from dispel4py.provenance.context import COMPACT
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(120)


class Items(ProducerPE):
    def __init__(self, n):
        ProducerPE.__init__(self)
        self.n = n

    def _process(self, inputs):
        for i in range(self.n):
            self.write("output", {"k": i % 4, "i": i}, metadata={"i": i, "bad": object() if i == 3 else 0})


class ByKey(GenericPE):
    """Grouped by the dict key 'k': an envelope around the item would not have it."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping=["k"])
        self._add_output("output")

    def _process(self, inputs):
        item = inputs["input"]
        assert type(item) is dict and set(item) == {"k", "i"}, item
        self.write("output", item, metadata={"i": item["i"], "k": item["k"]})


class Keep(IterativePE):
    def _process(self, item):
        return item["i"]


def make_graph(n=20):
    graph = WorkflowGraph()
    items, by_key = Items(n), ByKey()
    graph.connect(items, "output", by_key, "input")
    graph.connect(by_key, "output", Keep(), "input")
    return graph


@pytest.mark.parametrize(
    ("mapping", "options"),
    [
        ("simple", {}),
        ("multi", {"num": 4}),
        ("multi", {"num": 3, "start_method": "spawn"}),
        ("multi", {"num": 3, "start_method": "forkserver"}),
        ("dyn_multi", {"num": 3}),
    ],
    ids=["simple", "multi-fork", "multi-spawn", "multi-forkserver", "dyn_multi"],
)
def test_items_classes_and_statefulness_are_untouched(mapping, options, tmp_path, caplog, fresh_ids) -> None:
    graph = make_graph()
    flags = [
        (pe.id, getattr(pe, "stateful", None), getattr(pe, "single", None))
        for pe in graph.get_contained_objects()
    ]
    plain = dispel4py.run(graph, mapping=mapping, **options)
    classes = {type(pe): dict(vars(type(pe))) for pe in graph.get_contained_objects()}  # after copying once
    with caplog.at_level(logging.WARNING, logger="dispel4py.provenance"):
        result = dispel4py.run(graph, mapping=mapping, provenance={"path": str(tmp_path)}, **options)
    assert (
        sorted(result.outputs["Keep2"]["output"])
        == sorted(plain.outputs["Keep2"]["output"])
        == list(range(20))
    )
    assert result.processes == plain.processes  # the same placement: no PE became stateful
    assert {type(pe): dict(vars(type(pe))) for pe in graph.get_contained_objects()} == classes
    assert [
        (pe.id, getattr(pe, "stateful", None), getattr(pe, "single", None))
        for pe in graph.get_contained_objects()
    ] == flags
    # the unserialisable metadata of item 3: written with repr, said once (by the driver)
    (bad,) = [
        r for r in records(tmp_path) if r.get("name") == "Items" and r["streams"][0]["content"][0]["i"] == 3
    ]
    assert bad["streams"][0]["content"][0]["bad"].startswith("<object object at ")
    (warning,) = [r.message for r in caplog.records if "could not be written as JSON" in r.message]
    assert warning.startswith("1 provenance record could not")
    lineage = lineage_of(tmp_path)
    assert lineage["streams"][("Keep2", "output", frozenset([7]))] == 1


def test_records_json_cannot_write_are_said_once_per_run(tmp_path) -> None:
    """Three such records, made by three instances in different worker processes: one
    warning with the run's total, from the driver, and no folder of counts left behind."""
    tallies = set(glob.glob(os.path.join(tempfile.gettempdir(), "d4py-prov-tally-*")))
    args = ("-n", "3", "--provenance-path", str(tmp_path / "prov"))
    done = run(cli("multi", str(WORKFLOWS / "prov_unserialisable.py"), *args), timeout=100)
    assert done.returncode == 0, done.stderr
    warnings = [x for x in done.stderr.splitlines() if "could not be written as JSON" in x]
    assert len(warnings) == 1, done.stderr
    assert "3 provenance records could not be written as JSON" in warnings[0]
    bad = [
        r
        for r in records(tmp_path / "prov")
        if r.get("name") == "Tag" and r["streams"][0]["content"][0]["bad"]
    ]
    assert sorted(r["streams"][0]["content"][0]["i"] for r in bad) == [3, 7, 11]
    assert len({r["pid"] for r in records(tmp_path / "prov") if r.get("name") == "Tag"}) > 1
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "d4py-prov-tally-*"))) <= tallies


def test_sel_rules_keep_only_what_they_select(tmp_path, fresh_ids) -> None:
    graph = make_graph()
    rules = {"ByKey": {"rules": {"k": {"$gt": 1}, "i": {"$lt": 15}}}}
    dispel4py.run(graph, provenance={"path": str(tmp_path), "s-prov:sel-rules": rules})
    kept = [r["streams"][0]["content"][0] for r in records(tmp_path) if r.get("name") == "ByKey"]
    assert sorted(m["i"] for m in kept) == [i for i in range(15) if i % 4 > 1]
    assert len([r for r in records(tmp_path) if r.get("name") == "Keep"]) == 20  # other PEs: all


class Summer(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")
        self.total = 0

    def _process(self, inputs):
        self.total += inputs["input"]["i"]
        if random.random() < 0.01:
            self.update_prov_state("total", self.total)

    def _postprocess(self):
        self.write("output", self.total)


def test_a_long_accumulation_is_folded_and_still_traced(tmp_path, fresh_ids) -> None:
    """A postprocess total derives from every item summed, through state records that fold
    the history every COMPACT items: the process never holds more than that."""
    seed = random.randrange(1 << 30)
    print("seed", seed)
    random.seed(seed)
    n = 5 * COMPACT + 17
    graph = WorkflowGraph()
    items, summer = Items(n), Summer()
    graph.connect(items, "output", summer, "input")
    result = dispel4py.run(graph, provenance={"path": str(tmp_path)})
    assert result.outputs["Summer1"]["output"] == [n * (n - 1) // 2]
    (total,) = [
        r for r in records(tmp_path) if r.get("name") == "Summer" and r["streams"][0]["port"] == "output"
    ]
    assert len(total["derivationIds"]) <= COMPACT + 1
    assert lineage_of(tmp_path)["streams"][("Summer1", "output", frozenset(range(n)))] == 1


class Picky(IterativePE):
    def _process(self, item):
        if item["i"] == 5:
            raise ValueError("no fives")
        return item


@pytest.mark.parametrize(
    ("mapping", "options"), [("simple", {}), ("multi", {"num": 3}), ("dyn_multi", {"num": 2})]
)
def test_a_failure_names_the_users_item(mapping, options, tmp_path, fresh_ids) -> None:
    graph = WorkflowGraph()
    graph.connect(Items(8), "output", Picky(), "input")
    with pytest.raises(dispel4py.WorkflowFailed) as failed:
        dispel4py.run(graph, mapping=mapping, provenance={"path": str(tmp_path)}, **options)
    message = str(failed.value)  # the user's item, not (item, ids)
    assert "with item {'i': 5, 'k': 1}" in message and message.endswith("ValueError: no fives")
