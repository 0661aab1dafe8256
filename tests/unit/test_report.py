"""A run as data: JSON of any item, the stats document, the bottleneck hint, result lookups."""

from __future__ import annotations

import datetime
import json
import math
from decimal import Decimal
from enum import Enum, IntEnum

import numpy as np
import pytest

import dispel4py
from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.dynamic.layout import dynamic_place
from dispel4py.engine.plan import make_plan
from dispel4py.engine.result import InstanceStats, Outputs, RunResult
from dispel4py.engine.result_json import SCHEMA, jsonable, stats_dict
from dispel4py.mappings import get_mapping
from dispel4py.observe.report import describe_layout, find_bottleneck, layout_of
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(30)


class Color(Enum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


# -- JSON of any item ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (None, None),
        (True, True),
        (3, 3),
        (2.5, 2.5),
        ("text", "text"),
        ([1, (2, 3)], [1, [2, 3]]),
        ({"a": {"b": [1]}}, {"a": {"b": [1]}}),
        ({1: "x", 2.5: "y", None: "z", False: "w"}, {"1": "x", "2.5": "y", "null": "z", "false": "w"}),
        ({(1, 2): "pair"}, {"(1, 2)": "pair"}),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        ({1, 2}, "{1, 2}"),
        (b"raw", "b'raw'"),
        (Decimal("1.5"), "Decimal('1.5')"),
        (datetime.date(2024, 1, 2), "datetime.date(2024, 1, 2)"),
        (Level.HIGH, 3),
        (Color.RED, "<Color.RED: 'red'>"),
        (np.int64(7), 7),
        (np.float32(1.5), 1.5),
        (np.bool_(True), True),
        (np.arange(3), [0, 1, 2]),
        (np.array([[1.0, np.nan]]), [[1.0, "nan"]]),
    ],
)
def test_jsonable_keeps_what_json_holds_and_reprs_the_rest(item, expected) -> None:
    converted = jsonable(item)
    assert converted == expected
    json.dumps(converted, allow_nan=False)  # always standard JSON


def test_jsonable_survives_a_cycle() -> None:
    loop: list = []
    loop.append(loop)
    json.dumps(jsonable(loop), allow_nan=False)


# -- graphs ---------------------------------------------------------------------------------
class Numbers(ProducerPE):
    def _process(self, inputs):
        for n in range(5):
            self.write("output", n)


class Work(IterativePE):
    def _process(self, n):
        return {n}  # a set: JSON falls back to its repr


class Total(ConsumerPE):
    def __init__(self):
        super().__init__()
        self._add_output("total")
        self.inputconnections["input"]["grouping"] = "global"
        self.total = 0

    def _process(self, n):
        self.total += len(n)

    def _postprocess(self):
        self.write("total", self.total)


def _graph():
    graph = WorkflowGraph()
    numbers, work, total = Numbers(), Work(), Total()
    graph.connect(numbers, "output", work, "input")
    graph.connect(work, "output", total, "input")
    return graph, numbers, work, total


def _result(plan, busy: dict[str, list[float]], elapsed: float) -> RunResult:
    stats = []
    for pe, iids in plan.instances.items():
        for iid, seconds in zip(iids, busy.get(pe, [0.0] * len(iids))):
            stats.append(InstanceStats(pe, iid, plan.worker_of(iid), calls=1, busy_s=seconds))
    return RunResult(
        outputs={},
        stats=stats,
        mapping="multi",
        elapsed_s=elapsed,
        workers=plan.num_workers,
        layout=layout_of(plan),
    )


# -- the bottleneck -------------------------------------------------------------------------
def test_a_busy_pe_on_fewer_instances_than_workers_is_named_with_what_to_do() -> None:
    graph, _numbers, work, _total = _graph()
    work.numprocesses = 2
    plan = make_plan(graph, None, 8)
    result = _result(plan, {work.id: [3.8, 3.9]}, elapsed=4.0)
    found = find_bottleneck(plan, result)
    assert found is not None
    assert found["pe"] == work.id
    assert (found["instances"], found["workers"]) == (2, plan.num_workers)
    assert found["busy_share"] == pytest.approx(0.9625)
    assert f"bottleneck: {work.id} was busy 96% of the 4.00 s run on 2 instances" in found["hint"]
    assert "numprocesses" in found["hint"] and "dyn_multi" in found["hint"]


def test_a_pe_that_must_stay_one_instance_gets_a_different_hint() -> None:
    graph, _numbers, _work, total = _graph()
    plan = make_plan(graph, None, 8)
    result = _result(plan, {total.id: [3.9]}, elapsed=4.0)
    found = find_bottleneck(plan, result)
    assert found is not None and found["pe"] == total.id
    assert "grouped 'global'" in found["hint"]
    assert "make its work cheaper" in found["hint"]
    assert "dyn_multi" not in found["hint"]


@pytest.mark.parametrize(
    ("busy", "elapsed", "workers"),
    [
        ("nothing", 4.0, 8),  # nothing busy
        ("work-busy-but-short", 0.1, 8),  # a short run says nothing
        ("work-half", 4.0, 8),  # busy less than half the run
        ("everyone", 4.0, 2),  # every worker busy: more instances would not help
        ("work-busy", 4.0, 1),  # one worker
    ],
)
def test_no_hint_when_no_pe_bounds_the_run(busy, elapsed, workers) -> None:
    graph, _numbers, work, _total = _graph()
    plan = make_plan(graph, None, workers)
    n = len(plan.instances[work.id])
    table = {
        "work-busy-but-short": {work.id: [0.09] * n},
        "work-half": {work.id: [1.5] * n},
        "everyone": {pe: [3.9] * len(iids) for pe, iids in plan.instances.items()},
        "work-busy": {work.id: [3.9] * n},
    }.get(busy, {})
    assert find_bottleneck(plan, _result(plan, table, elapsed)) is None


def test_no_hint_for_a_shared_pe_of_a_dynamic_mapping() -> None:
    graph, _numbers, work, _total = _graph()
    plan = make_plan(graph, None, 8, place_fn=dynamic_place)
    assert find_bottleneck(plan, _result(plan, {work.id: [3.9]}, 4.0)) is None


# -- the stats document and the result ------------------------------------------------------------
def test_stats_document_has_pes_instances_layout_and_the_run() -> None:
    graph, numbers, work, total = _graph()
    result = dispel4py.run(graph, None, "simple")
    doc = stats_dict(result)
    assert doc["schema"] == SCHEMA
    assert (doc["mapping"], doc["workers"]) == ("simple", 1)
    assert doc["elapsed_s"] > 0
    assert list(doc["pes"]) == [numbers.id, work.id, total.id]
    assert doc["pes"][work.id]["items_in"] == 5
    assert doc["pes"][work.id]["instances"] == 1
    assert {i["pe"] for i in doc["instances"]} == {numbers.id, work.id, total.id}
    assert set(doc["instances"][0]) == {
        "pe",
        "instance",
        "worker",
        "items_in",
        "items_out",
        "busy_s",
        "copies",
    }
    assert doc["layout"][work.id] == [{"instance": 1, "worker": 0}]
    assert doc["bottleneck"] is None
    assert doc["processes"].startswith("Processes: {")
    json.dumps(doc, allow_nan=False)


def test_result_to_dict_is_json_with_the_outputs() -> None:
    graph, _numbers, _work, total = _graph()
    result = dispel4py.run(graph, None, "simple")
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["outputs"] == {total.id: {"total": [5]}}
    assert data["schema"] == SCHEMA


def test_results_by_pe_object_or_id() -> None:
    graph, _numbers, work, total = _graph()
    result = dispel4py.run(graph, None, "simple")
    assert result[total] == result[total.id] == {"total": [5]}
    assert result.items(total, "total") == result.items(total.id, "total") == [5]
    assert result.outputs[total] == {"total": [5]}
    assert total in result.outputs and total.id in result.outputs
    assert result[work] == {}  # a PE of the run that collected nothing
    assert result.items(work) == []


def test_an_unknown_pe_is_a_key_error_naming_the_known_ones() -> None:
    graph, numbers, work, total = _graph()
    result = dispel4py.run(graph, None, "simple")
    with pytest.raises(KeyError) as caught:
        result.items(total.id + "x", "total")
    message = caught.value.args[0]
    assert f"no PE '{total.id}x' in this run" in message
    assert f"did you mean '{total.id}'" in message
    assert f"its PEs are: {numbers.id}, {work.id}, {total.id}" in message
    with pytest.raises(KeyError, match="its PEs are"):
        result.outputs["nope"]


def test_outputs_stay_a_plain_dict() -> None:
    outputs = Outputs({"A0": {"output": [1]}}, ["A0", "B1"])
    assert outputs == {"A0": {"output": [1]}}
    assert repr(outputs) == "{'A0': {'output': [1]}}"
    assert json.loads(json.dumps(outputs)) == {"A0": {"output": [1]}}
    assert outputs["B1"] == {}
    assert outputs.get("B1") is None


def test_result_made_by_hand_looks_up_its_outputs() -> None:
    result = RunResult(outputs={"A0": {"output": [1]}})
    assert result.items("A0") == [1]
    with pytest.raises(KeyError):
        result.items("B1")


# -- the layout -------------------------------------------------------------------------------
def test_preview_plan_matches_the_plan_of_a_run() -> None:
    graph, _numbers, _work, _total = _graph()
    multi = get_mapping("multi")
    preview = multi.preview_plan({"num": 3, "simple": False}, graph, None)
    assert layout_of(preview) == layout_of(multi({"num": 3}).make_plan(graph, None, None))


def test_preview_plan_of_mpi_starts_no_mpi() -> None:
    pytest.importorskip("mpi4py")
    import sys

    graph, _numbers, _work, _total = _graph()
    was_loaded = "mpi4py.MPI" in sys.modules
    plan = get_mapping("mpi").preview_plan({"num_processes": 3}, graph, None)
    assert plan.num_workers == 3
    assert ("mpi4py.MPI" in sys.modules) == was_loaded


def test_describe_layout_lists_pes_and_workers() -> None:
    graph, _numbers, work, _total = _graph()
    plan = make_plan(graph, None, 3, place_fn=dynamic_place)
    text = describe_layout(plan, "dyn_multi")
    lines = text.splitlines()
    assert lines[0] == "dyn_multi: 3 workers, dynamic: shared PEs on any worker, the others pinned"
    assert lines[1].split() == ["PE", "instances", "workers"]
    assert lines[3].split() == [work.id, "1", "any", "(shared)"]
    assert lines[-1].startswith("Processes: {")
    assert any(line.startswith("worker 2:") for line in lines)
    assert math.isfinite(plan.num_workers)
