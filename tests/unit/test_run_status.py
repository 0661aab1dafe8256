"""The driver's status snapshot (mappings/redis/run_status.py) from a fake coordinator: the
counts it shows are the coordinator's, tasks are counted from the reports, a shared PE's one
queue is listed once, and a snapshot that cannot be made never ends the run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from dispel4py.dynamic.signing import MAC_SIZE, Signer
from dispel4py.mappings.redis.run_status import StatusPublisher, status_key

pytestmark = pytest.mark.timeout(30)


class _Pipe:
    def __init__(self) -> None:
        self.written: dict[str, tuple[bytes, int]] = {}

    def set(self, key: str, value: bytes, px: int) -> None:
        self.written[key] = (value, px)


def _publisher() -> tuple[StatusPublisher, SimpleNamespace]:
    plan = SimpleNamespace(order=["Src0", "Work1"], pe_of=lambda iid: ["Src0", "Work1", "Work1"][iid])
    coordinator = SimpleNamespace(
        plan=plan, items={"Src0": 1, "Work1": 0}, in_flight={"Src0": 0, "Work1": 3}, ended={"Src0"}
    )
    names = SimpleNamespace(
        run_id="r1", instance_streams=["d4py:r1:q:Src0:0", "d4py:r1:q:Work1:0", "d4py:r1:q:Work1:0"]
    )
    return StatusPublisher(Signer(b"k" * 32), names, "dyn_redis", coordinator, lambda: (2, 1)), coordinator


def test_the_snapshot_shows_the_coordinators_counts_and_the_tasks_reported() -> None:
    publisher, coordinator = _publisher()
    for _ in range(4):
        assert publisher.on_report(0, "task", (None, "Work1", {}, 10, 0.1)) is False  # never consumed
    publisher.on_report(0, "posted", (None, "Src0", {}))
    coordinator.items["Work1"] = 40
    status = publisher.snapshot()
    assert (status.run, status.mapping, status.local_workers, status.joined_workers) == (
        "r1",
        "dyn_redis",
        2,
        1,
    )
    src, work = status.pes
    assert (src.pe, src.items, src.tasks, src.ended, src.streams) == (
        "Src0",
        1,
        0,
        True,
        ["d4py:r1:q:Src0:0"],
    )
    assert (work.items, work.tasks, work.ended, work.streams) == (40, 4, False, ["d4py:r1:q:Work1:0"])
    assert work.items_per_s > 0


def test_publish_writes_signed_json_bound_to_its_key() -> None:
    publisher, _ = _publisher()
    pipe = _Pipe()
    publisher.publish(pipe)
    value, ttl = pipe.written[status_key("r1")]
    assert ttl == 5000
    assert json.loads(value[MAC_SIZE:])["run"] == "r1"
    Signer(b"k" * 32).check(b"run-status", value[:MAC_SIZE], value[MAC_SIZE:], status_key("r1").encode())


def test_a_snapshot_that_cannot_be_made_is_said_once_and_the_run_goes_on(caplog) -> None:
    publisher, coordinator = _publisher()
    coordinator.items = None  # a bug of ours, say
    pipe = _Pipe()
    publisher.publish(pipe)
    publisher.publish(pipe)
    assert pipe.written == {}
    assert [r.message for r in caplog.records if "no status" in r.message][:1] and len(caplog.records) == 1
