"""Quiet ends (``dynamic/coordinator.py``): a PE whose ``postprocess`` is the base class's is
asked to run it but not waited for, so the PEs after it end in the same round; one that
writes in ``postprocess`` is waited for, and with provenance every PE is. Once every PE has
ended or is ending, the workers are told to send their stats at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_coordinator_gone import _Commands

from dispel4py.dynamic.coordinator import Coordinator
from dispel4py.dynamic.layout import dynamic_place
from dispel4py.engine.loading import load_workflow
from dispel4py.engine.plan import make_plan

pytestmark = pytest.mark.timeout(30)

CHAIN = str(Path(__file__).parents[1] / "integration" / "workflows" / "fused_chain.py")


def _run_to_the_end(recording: bool) -> tuple[Coordinator, _Commands, list[str]]:
    plan = make_plan(load_workflow(CHAIN), {"Numbers": 1}, 2, place_fn=dynamic_place)
    numbers, waits, double, length, tally = plan.order
    queues = _Commands()
    coordinator = Coordinator(plan, queues, recording=recording)  # type: ignore[arg-type]
    coordinator.start()
    coordinator.on_report(0, "task", (0, numbers, {waits: 1}, 1, 0.0))
    coordinator.on_report(1, "task", (1, waits, {double: 1, length: 1}, 1, 0.0))
    coordinator.on_report(1, "task", (1, double, {tally: 1}, 1, 0.0))
    coordinator.on_report(1, "task", (1, length, {}, 1, 0.0))
    coordinator.on_report(0, "task", (0, tally, {}, 1, 0.0))
    return coordinator, queues, plan.order


def test_pes_that_write_nothing_at_the_end_are_not_waited_for() -> None:
    coordinator, queues, (numbers, waits, double, length, tally) = _run_to_the_end(recording=False)
    posted = [message[1] for _, message in queues.sent if message[0] == "post"]
    assert posted == [numbers, waits, double, length, tally]  # all asked in one round
    assert coordinator.ended == {numbers, waits, double, length}  # Tally writes its total: waited for
    assert not coordinator.finished
    # Tally is a sink: no task can arise, so the workers send their stats after its postprocess
    last_post = max(i for i, (_, m) in enumerate(queues.sent) if m[0] == "post")
    assert {w for w, m in queues.sent[last_post:] if m == ("end",)} == {0, 1}
    coordinator.on_report(1, "posted", (1, waits, {}))  # a quiet PE's late answer changes nothing
    coordinator.on_report(0, "posted", (0, tally, {}))
    assert coordinator.finished and (0, ("end",)) in queues.sent


def test_with_provenance_every_pe_is_waited_for() -> None:
    coordinator, queues, (numbers, waits, *_rest) = _run_to_the_end(recording=True)
    posted = [message[1] for _, message in queues.sent if message[0] == "post"]
    assert posted == [numbers]  # the next PE waits for its answer
    coordinator.on_report(0, "posted", (0, numbers, {}))
    assert [message[1] for _, message in queues.sent if message[0] == "post"] == [numbers, waits]
