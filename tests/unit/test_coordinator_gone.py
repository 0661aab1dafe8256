"""The coordinator's end of stream with a worker taken for gone: pure inputs, no processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dispel4py.dynamic.coordinator import Coordinator
from dispel4py.dynamic.layout import dynamic_place
from dispel4py.engine.loading import load_workflow
from dispel4py.engine.plan import make_plan

pytestmark = pytest.mark.timeout(30)

GATE = str(Path(__file__).parents[1] / "integration" / "workflows" / "gated.py")


class _Commands:
    """The coordinator's queues: only the commands it sends are looked at."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Any]] = []

    def put(self, key: int, task: Any) -> None:
        pass

    def command(self, worker: int, message: Any) -> None:
        self.sent.append((worker, message))


def test_a_task_reported_by_a_worker_taken_for_gone_is_counted_but_not_waited_for() -> None:
    plan = make_plan(load_workflow(GATE), {"Numbers": 1}, 2, place_fn=dynamic_place)
    numbers, slow, total = plan.order
    queues = _Commands()
    coordinator = Coordinator(plan, queues)  # type: ignore[arg-type]
    coordinator.start()
    coordinator.on_report(0, "task", (0, numbers, {slow: 2}, 1, 0.0))
    coordinator.on_report(0, "posted", (0, numbers, {}))
    coordinator.worker_lost(1)  # its tasks go back to the queue, it is told to quit
    coordinator.on_report(1, "task", (1, slow, {total: 1}, 1, 0.0))  # committed before it saw that
    coordinator.on_report(0, "task", (0, slow, {total: 1}, 1, 0.0))
    assert coordinator.in_flight[total] == 2  # both tasks' outputs are counted
    assert (0, ("post", slow)) in queues.sent
    assert (1, ("post", slow)) not in queues.sent  # it would never answer
    coordinator.on_report(0, "posted", (0, slow, {}))
    assert slow in coordinator.ended
