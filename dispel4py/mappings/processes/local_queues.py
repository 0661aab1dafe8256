"""The dynamic engine's task queues on one machine (``dyn_multi``, ``dyn_auto_multi``).

One ``multiprocess`` queue per key: each pinned instance, each shared PE, and each worker's
control key; a shared array counts the tasks queued under every key (the backlogs the
engine bounds). Tasks are pickled by the engine's side of ``put`` (so an unpicklable item
is reported at once, naming its PE and port, instead of being lost in a feeder thread),
with the channels' codec (large buffers through shared memory, ``shm.py``).
Reports travel on the worker's own pipe to the driver, as on ``multi``; a worker sends
the reports of the tasks it ran in batches (``("reports", [...])``, at most ``_REPORT_S``
late, and always before it waits for a task or sends anything else), which saves a pipe
write and a wake-up of the driver per task.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from queue import Empty
from time import perf_counter
from typing import Any

from dispel4py.dynamic.worker import DynamicWorker
from dispel4py.engine.plan import Plan
from dispel4py.mappings.processes.channels import Channels, live_sender
from dispel4py.observe.live import sampling

__all__ = ["LocalQueues", "REPORTS"]

REPORTS = "reports"  # the kind of a batch of reports: [(kind, body), ...] in order
_REPORT_S = 0.01  # a task's report waits at most this long for others to go with it
_REPORT_BATCH = 64


class LocalQueues(Channels):
    """Made by the driver before the workers start; each worker gets a copy (fork or pickle)."""

    def __init__(self, ctx: Any, plan: Plan) -> None:
        self.instances = len(plan.placement.pe_of)
        self.workers = plan.num_workers
        self.queues = [ctx.Queue() for _ in range(self.instances + self.workers)]
        self.keys = self.instances + self.workers
        self.counts = ctx.Array("q", 2 * self.keys)  # tasks queued per key, then running per key
        self.current = ctx.Array("i", [-1] * self.workers, lock=False)  # key each worker runs
        self.plan = plan
        self.worker = -1  # set in the worker
        self.link: Any = None  # the worker's pipe to the driver, set in the worker
        self._reports: list[Any] = []  # task reports not sent yet (the worker's)
        self._reports_by = 0.0  # when they must go

    # -- both sides ------------------------------------------------------------------------
    def control_key(self, worker: int) -> int:
        return self.instances + worker

    def put(self, key: int, task: Any) -> None:
        data = self.codec.dumps(task)
        with self.counts.get_lock():
            self.counts[key] += 1
        self.queues[key].put(data)

    def backlog(self, key: int) -> int:
        return int(self.counts[key])

    queued = backlog  # shared memory: always as good as fresh

    def running(self, key: int) -> int:
        return int(self.counts[self.keys + key])

    def total_backlog(self) -> int:
        with self.counts.get_lock():
            return sum(self.counts[: self.instances])

    # -- the coordinator's side ----------------------------------------------------------------
    def command(self, worker: int, message: Any) -> None:
        self.queues[self.control_key(worker)].put(self.codec.dumps(message))

    def send_from_driver(self, worker: int, message: Any) -> None:
        self.command(worker, message)  # the process pool's quit

    def open(self, worker: int) -> Any:
        raise NotImplementedError("the dynamic engine takes tasks from the queues; see serve()")

    def close(self) -> None:
        for queue in self.queues:
            queue.close()
            queue.cancel_join_thread()

    # -- a worker's side ---------------------------------------------------------------------
    def serve(self, plan: Plan, worker: int, link: Any, where: str, tuning: Any) -> None:
        """Run the dynamic engine in this worker process until the driver says quit."""

        self.link, self.worker = link, worker
        engine = DynamicWorker(plan, worker, self, link, tuning=tuning, where=where)
        try:
            with sampling(engine.live_rows, live_sender(link, worker), tuning.live_s):
                engine.run()
        finally:
            engine.close()
            self.flush()

    def take(self, keys: Sequence[int], timeout: float | None) -> tuple[int, Any] | None:
        from multiprocess.connection import wait

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for key in keys:
                try:
                    data = self.queues[key].get_nowait()
                except Empty:
                    continue
                if key < self.instances:
                    with self.counts.get_lock():
                        self.counts[key] -= 1
                        self.counts[self.keys + key] += 1
                return key, self.codec.loads(data)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self.send_reports()  # before waiting: the coordinator may wait on them
            wait([self.queues[k]._reader for k in keys], left)

    def running_now(self, key: int) -> None:
        """Say which key this worker runs a task of (-1: none), for the message if it dies."""
        self.current[self.worker] = key

    def doing(self, worker: int) -> str:
        key = self.current[worker]
        if not 0 <= key < self.instances:
            return ""
        pe_id = self.plan.pe_of(key)
        return f"while running a task of {pe_id} (instance {key})"

    def task_done(self, key: int, report: Any) -> None:
        with self.counts.get_lock():
            self.counts[self.keys + key] -= 1
        reports = self._reports
        if not reports:
            self._reports_by = perf_counter() + _REPORT_S
        reports.append(report)
        if len(reports) >= _REPORT_BATCH or perf_counter() > self._reports_by:
            self.send_reports()

    def send_reports(self) -> None:
        """The task reports held back, in one message."""
        if self._reports:
            reports, self._reports = self._reports, []
            self.link.send((REPORTS, reports))

    def report(self, message: Any) -> None:
        self.send_reports()  # in order: what the coordinator counts comes first
        self.link.send(message)

    def flush(self) -> None:
        """Hand everything this worker queued to the OS (before it exits)."""
        if self.link is not None:
            self.send_reports()
        for queue in self.queues:
            queue.close()
        for queue in self.queues:
            queue.join_thread()
