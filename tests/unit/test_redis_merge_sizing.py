"""How a Redis worker sizes its merged takes (``redis/worker.py``): from the time of one
*queued* task, whether the task it measured was one of them or several run as one (a merged
take of four 50 ms tasks must not make the next take a single one); and how many tasks a
queue of merged tasks may hold before a writer helps (as many times more, while the bytes it
may hold stay within the usual bound)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dispel4py.engine.tuning import Tuning
from dispel4py.mappings.redis.take import _Frame
from dispel4py.mappings.redis.worker import MAX_MERGE, RedisWorker

pytestmark = pytest.mark.timeout(30)

STAGE = 3  # the instance of the measured PE
PE = "Stage3"


def _worker(*, frames: list[_Frame] | None = None, running: int = STAGE) -> Any:
    """A RedisWorker with only what ``_measure`` and ``room`` use (no plan, no server)."""
    worker: Any = object.__new__(RedisWorker)
    worker.plan = SimpleNamespace(
        pe_of=lambda key: PE if key == STAGE else f"Other{key}", instances={PE: [STAGE]}
    )
    worker.queues = SimpleNamespace(frames=frames or [], merge={}, put_bytes={})
    worker.running = running
    worker.cost, worker.sizes = {}, {PE: 1}
    worker.tuning = Tuning()
    worker.backlog_limit = 8
    return worker


def _frame(tasks: int) -> _Frame:
    return _Frame(STAGE, [b"%d-0" % n for n in range(tasks)], shared=True)


@pytest.mark.parametrize("tasks", [1, 4, 16])
def test_the_merge_is_sized_by_one_queued_task_however_many_ran_as_one(tasks: int) -> None:
    worker = _worker(frames=[_frame(tasks)])
    for _ in range(3):  # the same size after every measure: no single take in between
        worker._measure(PE, 0.05 * tasks, tasks)  # one item per queued task, 50 ms each
        assert worker.queues.merge[STAGE] == 4  # 0.2 s of merged work


def test_a_fused_task_is_measured_as_one_task() -> None:
    """Fused (``run_fused``): the frame on top is its writer's, of another PE."""
    worker = _worker(frames=[_Frame(7, [b"1-0", b"2-0"], shared=True)], running=7)
    worker._measure(PE, 0.02, 2)  # two items of 10 ms in one task
    assert worker.queues.merge[STAGE] == 10


def test_merges_are_bounded() -> None:
    worker = _worker(frames=[_frame(1)])
    worker._measure(PE, 1e-6, 1)
    assert worker.queues.merge[STAGE] == MAX_MERGE
    worker = _worker(frames=[_frame(1)])
    worker._measure(PE, 1.0, 1)
    assert worker.queues.merge[STAGE] == 1


def test_a_queue_of_merged_tasks_holds_as_many_times_more_while_they_are_small() -> None:
    worker = _worker()
    assert worker.room(STAGE) == 8  # not merged (not measured here)
    worker.queues.merge[STAGE] = 4
    worker.queues.put_bytes[STAGE] = 1000
    assert worker.room(STAGE) == 32
    # large tasks: 4 x the bytes of one would pass what credits x workers full tasks may hold
    worker.queues.put_bytes[STAGE] = worker.tuning.batch_bytes // 4 + 1
    assert worker.room(STAGE) == 8
    worker.queues.put_bytes[STAGE] = worker.tuning.batch_bytes // 4
    assert worker.room(STAGE) == 32
