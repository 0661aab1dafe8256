"""The fusion decision (``dynamic/fusion.py``) on its own: only shared keys this worker
holds, with a measured cost under ``fuse_s`` for the whole task, not too deep; a fused task
gets its own copies of its items and says it runs; items that cannot be copied are queued."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from dispel4py.dynamic.fusion import MAX_FUSED_DEPTH, Fusing

pytestmark = pytest.mark.timeout(30)


class _Worker(Fusing):
    def __init__(self) -> None:
        self.calls = SimpleNamespace(
            stack=[], may_nest=lambda key: True, stats={7: SimpleNamespace(busy_s=0.0)}
        )
        self.calls.run_items = self._run_items
        self.plan = SimpleNamespace(pe_of=lambda key: f"pe{key}")
        self.level = {7: 3}
        self.handlers = {7: None}
        self.running = -1
        self.said: list[int] = []
        self.queues = SimpleNamespace(running_now=self.said.append)
        self.cost = {"pe7": 0.0001}
        self.held = {7}
        self.seen: list[Any] = []
        self.flushed: list[int | None] = []
        self.start_fusing([7, 8], allowed=True)

    def _run_items(self, key: int, handler: Any, port: str, items: list[Any]) -> None:
        self.seen.append((key, port, items, self.running))
        for item in items:
            if isinstance(item, list):
                item.append("mutated")

    def _ensure(self, iid: int, preprocess: bool = True) -> None:
        pass

    def _measure(self, pe_id: str, busy: float, count: int) -> None:
        pass

    def flush_all(self, above: int | None = None) -> None:
        self.flushed.append(above)


def test_only_cheap_held_shared_tasks_fuse() -> None:
    worker = _Worker()
    assert worker.fuses(7, 4)  # 0.4 ms <= 0.5 ms
    assert not worker.fuses(7, 6)  # 0.6 ms: queued
    assert not worker.fuses(8, 1)  # shared, but no queued task of it ran here: not a holder
    worker.held.add(8)
    assert not worker.fuses(8, 1)  # a holder, but its cost is not measured here
    assert not worker.fuses(9, 1)  # not a shared key this worker may take
    worker.calls.stack = [0] * MAX_FUSED_DEPTH
    assert not worker.fuses(7, 1)  # too deep
    off = _Worker()
    off.start_fusing([7], allowed=False)  # provenance
    assert not off.fuses(7, 1)
    off.fuse_s = 0.0  # dead-letter on Redis
    off.start_fusing([7], allowed=True)
    assert not off.fuses(7, 1)


def test_a_fused_task_gets_copies_and_says_it_runs() -> None:
    worker = _Worker()
    item, number = [1], 5
    assert worker.run_fused(7, "input", [item, number])
    ((key, port, items, running),) = worker.seen
    assert (key, port, running) == (7, "input", 7) and items[1] == number
    assert item == [1]  # the fused PE mutated its own copy
    assert worker.running == -1 and worker.said[-2:] == [7, -1]
    assert worker.flushed == [3]  # what it wrote goes out above its level


def test_items_that_cannot_be_copied_are_queued() -> None:
    worker = _Worker()
    assert not worker.run_fused(7, "input", [threading.Lock()])
    assert worker.seen == []
