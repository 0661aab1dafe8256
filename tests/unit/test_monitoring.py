"""``dispel4py.new.monitoring``: the names user code imports (Timer, MonitoringWrapper,
ReadTimingWrapper, ProcessTimingPE) work on the engine's mappings."""

from __future__ import annotations

import copy
import logging
import re
import time

import pytest

import dispel4py
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.new.monitoring import MonitoringWrapper, ProcessTimingPE, ReadTimingWrapper, Timer
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_ids")]


def test_timer():
    with Timer(verbose=True) as timer:
        time.sleep(0.01)
    assert timer.secs >= 0.009 and timer.end >= timer.start


def test_monitoring_wrapper_is_the_pe():
    pe = t.TestOneInOneOut()
    wrapped = MonitoringWrapper(pe)
    assert isinstance(wrapped, t.TestOneInOneOut) and isinstance(wrapped, MonitoringWrapper)
    assert type(wrapped).__name__ == "TestOneInOneOut"
    wrapped.counter = 7
    assert pe.counter == 7 and wrapped.baseObject is pe  # one set of attributes
    twin = copy.deepcopy(wrapped)
    assert twin.baseObject is not pe and twin.__dict__ is twin.baseObject.__dict__
    twin.counter = 1
    assert pe.counter == 7


@pytest.mark.parametrize(("mapping", "options"), [("simple", {}), ("multi", {"num": 3})])
def test_wrappers_in_a_run(mapping, options, caplog):
    graph = WorkflowGraph()
    prod = t.TestProducer()
    reader = ReadTimingWrapper(t.TestOneInOneOut())
    timed = ProcessTimingPE(t.TestOneInOneOut())
    graph.connect(prod, "output", reader, "input")
    graph.connect(reader, "output", timed, "input")
    with caplog.at_level(logging.INFO):
        result = dispel4py.run(graph, {prod: 4}, mapping, **options)
    assert sorted(result.items("TestOneInOneOut2")) == [1, 2, 3, 4]
    assert re.search(r"TestOneInOneOut1 \(rank \d+\): Average read rate : \d", caplog.text)
    assert re.search(r"TestOneInOneOut2 \(rank \d+\): Average processing time: \d", caplog.text)


def test_read_rate_with_fewer_than_two_inputs(caplog):
    graph = WorkflowGraph()
    prod = t.TestProducer()
    graph.connect(prod, "output", ReadTimingWrapper(t.TestOneInOneOut()), "input")
    with caplog.at_level(logging.INFO):
        dispel4py.run(graph, {prod: 1})
    assert "Average read rate : fewer than two inputs" in caplog.text
