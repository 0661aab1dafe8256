"""How a Redis run tells the driver's host from others, and which queues take shared memory
(mappings/redis/payloads.py)."""

from __future__ import annotations

import pytest

from dispel4py.engine.placement import SHARED
from dispel4py.mappings.redis import payloads

pytestmark = pytest.mark.timeout(30)


def test_the_host_id_is_stable_and_the_environment_overrides_it(monkeypatch) -> None:
    monkeypatch.delenv(payloads.HOST_ID_ENV, raising=False)
    here = payloads.host_id()
    assert here == payloads.host_id() and len(here) == 16
    monkeypatch.setenv(payloads.HOST_ID_ENV, "elsewhere")
    assert payloads.host_id() == "elsewhere"
    monkeypatch.setenv(payloads.HOST_ID_ENV, "  ")
    assert payloads.host_id() == here


def test_the_host_id_changes_with_the_host_name(monkeypatch) -> None:
    monkeypatch.delenv(payloads.HOST_ID_ENV, raising=False)
    here = payloads.host_id()
    monkeypatch.setattr(payloads.socket, "gethostname", lambda: "another-host")
    assert payloads.host_id() != here


class _Plan:
    class placement:
        worker_of = [0, SHARED, 1, 2, SHARED]


def test_shared_queues_and_the_local_workers_pinned_ones_take_shared_memory() -> None:
    assert payloads.arena_keys(_Plan, 2) == {0, 1, 2, 4}  # instance 3 is on a joined worker's slot
    assert payloads.arena_keys(_Plan, 0) == {1, 4}


def test_a_worker_of_another_host_or_of_a_run_without_arena_gets_no_arena(monkeypatch) -> None:
    monkeypatch.setenv(payloads.HOST_ID_ENV, "elsewhere")
    meta = {"shm": {"host": "driver-host", "folder": "/nonexistent", "size": 1 << 20}, "local": 1}
    assert not payloads.joined_payloads(meta, _Plan).maps_arena
    assert not payloads.joined_payloads({"shm": None}, _Plan).maps_arena
    monkeypatch.setenv(payloads.HOST_ID_ENV, "driver-host")  # same host, but it cannot open it
    assert not payloads.joined_payloads(meta, _Plan).maps_arena
