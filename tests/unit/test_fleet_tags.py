"""Tags of the fleet (mappings/redis/fleet.py): parsing ``--tags``, reading ``pe.requires``,
and which worker slots an agent's process may take."""

from __future__ import annotations

import pytest

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.dynamic.layout import dynamic_place
from dispel4py.engine.plan import make_plan
from dispel4py.errors import UsageError
from dispel4py.mappings.redis.fleet import can_run, parse_tags, requirements, requires_of, slot_check
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(30)


def test_tags_parse_and_malformed_ones_name_the_flag() -> None:
    assert parse_tags("gpu,big-mem") == {"gpu", "big-mem"}
    assert parse_tags(" gpu , x.1 ") == {"gpu", "x.1"}
    assert parse_tags(None) == frozenset()
    for bad in ("", "gpu,", ",gpu", "gpu;rm -rf", "-gpu", "a" * 65):
        with pytest.raises(UsageError, match=r"^--tags: "):
            parse_tags(bad)


class Src(ProducerPE):
    def _process(self, inputs):
        self.write("output", 1)


class Step(IterativePE):
    def _process(self, x):
        return x


class Sink(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"

    def _process(self, x):
        pass


def test_requires_is_read_from_the_pe_and_a_malformed_one_names_it() -> None:
    pe = Step()
    assert requires_of(pe) == frozenset()
    pe.requires = {"gpu"}
    assert requires_of(pe) == {"gpu"}
    pe.requires = "gpu"  # a string is not a set of tags
    with pytest.raises(UsageError, match=rf"PE {pe.id}: requires must be a set of tags"):
        requires_of(pe)
    pe.requires = {"gpu", "bad tag"}
    with pytest.raises(UsageError, match=rf"PE {pe.id}: 'bad tag' in requires is not a tag"):
        requires_of(pe)
    assert can_run(frozenset({"gpu"}), frozenset({"gpu", "big-mem"}))
    assert not can_run(frozenset({"gpu", "big-mem"}), frozenset({"gpu"}))


def test_a_process_takes_only_the_slots_whose_pinned_instances_it_can_host() -> None:
    graph = WorkflowGraph()
    step, sink = Step(), Sink()
    graph.connect(Src(), "output", step, "input")
    graph.connect(step, "output", sink, "input")
    plan = make_plan(graph, None, 2, place_fn=dynamic_place)
    assert slot_check(plan, frozenset()) == ("", "")  # no pinned PE requires a tag: no check
    step.requires = {"gpu"}  # shared: never laid on a slot
    assert slot_check(plan, frozenset()) == ("", "")
    assert requirements(plan) == {step.id: {"gpu"}}
    sink.requires = {"gpu"}
    [sink_slot] = [plan.worker_of(i) for i in plan.instances[sink.id]]
    script, plain = slot_check(plan, frozenset())
    assert script and f",{sink_slot}," not in plain
    assert f",{sink_slot}," in slot_check(plan, frozenset({"gpu"}))[1]
