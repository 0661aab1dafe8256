"""The task queue interface of the dynamic engine, and the messages it carries.

The engine (``worker.py``, ``coordinator.py``) knows only this interface; the multiprocess
queues (``mappings/_local_queues.py``) and Redis Streams implement it.

* A **queue key** is an instance id of the plan: a pinned instance's own queue, or the
  virtual instance of a shared PE (see ``layout.py``). Each worker also has a *control* key
  (``control_key``), where the coordinator's commands arrive.
* A **task** is ``(port, items)``: items arriving on input ``port`` of the key's PE, one
  ``process`` call each; or ``(None, calls)`` for provided inputs (a number of ``{}`` calls or
  a list of input dicts, as ``-i``/``-d`` give them).
* **Reports** go from workers to the coordinator, in order per worker:

  - ``("task", (worker, pe_id, created, items, busy_s))`` a task is done; ``created`` counts
    the tasks this worker queued since its previous report, per PE. The coordinator applies
    both at once, so a PE's count of work in flight never reaches zero while its work exists;
  - ``("posted", (worker, pe_id, created))`` every local copy of the PE ran ``postprocess``;
  - plus what every mapping's workers say: ``results``, ``log``, ``error``, ``done`` (stats).
* **Commands** (coordinator → worker): ``("post", pe_id)``, ``("end",)`` (send your stats),
  ``("park",)``/``("wake",)`` (stop/start taking shared work), ``("sizes", {pe_id: n})``
  (items per task), and the pool's ``("Q",)`` (quit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["Task", "WorkerQueues", "CoordinatorQueues"]

Task = tuple[str | None, Any]


class WorkerQueues(Protocol):
    """What a worker needs from the queues."""

    def control_key(self, worker: int) -> int: ...

    def put(self, key: int, task: Task) -> None:
        """Queue ``task`` (never blocks; the engine bounds backlogs with :meth:`backlog`)."""

    def backlog(self, key: int) -> int:
        """Tasks queued under ``key`` and not taken yet (may lag a little)."""

    def queued(self, key: int) -> int:
        """:meth:`backlog` as last seen, without asking anyone (for choosing what to take:
        a take refreshes it anyway)."""

    def running(self, key: int) -> int:
        """Tasks taken from ``key`` and not done yet, on all workers (may lag a little)."""

    def take(self, keys: Sequence[int], timeout: float | None) -> tuple[int, Any] | None:
        """The next task or command from the first of ``keys`` that has one; wait up to
        ``timeout`` seconds (``None``: until one comes) when none has."""

    def running_now(self, key: int) -> None:
        """The key whose task this worker runs now (-1 for none), for failure messages."""

    def task_done(self, key: int, report: Any) -> None:
        """Acknowledge the task last taken from ``key`` and send its report."""

    def report(self, message: Any) -> None:
        """Send a message to the coordinator."""


class CoordinatorQueues(Protocol):
    """What the coordinator needs from the queues."""

    def put(self, key: int, task: Task) -> None: ...

    def command(self, worker: int, message: Any) -> None: ...

    def backlog(self, key: int) -> int: ...
