"""calls.py: what PE code raises becomes a WorkflowFailed naming the PE; only Ctrl-C passes."""

from __future__ import annotations

import sys

import pytest

from dispel4py.base import IterativePE, ProducerPE
from dispel4py.engine.calls import InstanceCalls
from dispel4py.engine.plan import make_plan
from dispel4py.errors import WorkflowFailed
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(30)


class Custom(BaseException):
    pass


def _calls() -> tuple[InstanceCalls, int]:
    graph = WorkflowGraph()
    graph.connect(ProducerPE(), "output", IterativePE(), "input")
    plan = make_plan(graph, None, 1)
    calls = InstanceCalls(plan, 0, "here")
    calls.add(1)
    return calls, 1


def _raise(exc: BaseException):
    def body() -> None:
        raise exc

    return body


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (SystemExit(3), "it called sys.exit(3)"),
        (SystemExit(0), "it called sys.exit(0)"),
        (Custom("odd"), "Custom: odd"),
        (GeneratorExit(), "GeneratorExit"),
        (ValueError("bad"), "ValueError: bad"),
    ],
)
def test_anything_pe_code_raises_is_a_failure_of_that_pe(exc: BaseException, text: str) -> None:
    calls, iid = _calls()
    with pytest.raises(WorkflowFailed) as info:
        calls.call(iid, "process", _raise(exc), lambda: 42, lambda: "input")
    failure = info.value
    assert failure.pe_id == calls.plan.pe_of(iid) and failure.instance == iid
    assert (failure.phase, failure.port, failure.item_repr) == ("process", "input", "42")
    assert text in str(failure)
    assert calls.stack == [] and not any(calls.active)


def test_ctrl_c_keeps_its_meaning() -> None:
    calls, iid = _calls()
    with pytest.raises(KeyboardInterrupt):
        calls.call(iid, "process", _raise(KeyboardInterrupt()))
    assert calls.stack == []


def test_the_stack_rises_in_level_and_busy_time_excludes_nested_calls() -> None:
    calls, iid = _calls()
    calls.add(0)
    seen: list[bool] = []

    def outer() -> None:
        seen.append(calls.may_nest(iid))  # level 1 above the source's 0
        calls.call(iid, "process", lambda: seen.append(calls.may_nest(0)))

    calls.call(0, "process", outer)
    assert seen == [True, False]
    assert calls.stats[0].busy_s >= 0 and calls.stats[iid].busy_s >= 0


def test_sys_exit_in_a_pe_is_reported_not_obeyed() -> None:
    calls, iid = _calls()
    with pytest.raises(WorkflowFailed):
        calls.call(iid, "postprocess", sys.exit)
