"""How local workers reach each other and the driver: the :class:`Channels` a mapping
chooses (pipes for ``multi``, ZeroMQ for ``zmq_multi``, the dynamic engine's queues for
``dyn_multi``), what every worker process is given at start, and how its live counters
reach the driver. Shared by the pool (the driver's side) and the worker process.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispel4py.engine.executor import Executor
from dispel4py.engine.plan import Plan
from dispel4py.engine.tuning import Tuning
from dispel4py.mappings.processes.link import FdHandle
from dispel4py.mappings.processes.shm import ShmCodec
from dispel4py.observe.live import LIVE_KIND, sampling

__all__ = ["QUIT", "PLAIN", "Channels", "WorkerStart", "live_sender"]

QUIT = ("Q",)  # the driver's last message to a worker, after every worker reported done
PLAIN = ShmCodec(None, 0, 0, None)  # plain pickles: no shared memory


class Channels:
    """How workers reach each other: made by the driver, opened in each worker.

    Every message a transport sends is made by ``codec.dumps`` and read by
    ``codec.loads`` (``shm.py``: large buffers through shared memory); the pool sets the
    codec of a run before any worker starts.
    """

    codec: ShmCodec = PLAIN

    @abstractmethod
    def open(self, worker: int) -> Any:
        """The worker's transport: ``send(worker, msg)``, ``recv()``, ``close()``."""

    @abstractmethod
    def send_from_driver(self, worker: int, message: Any) -> None: ...

    def close(self) -> None:
        """Release what the driver created."""

    def leftover_paths(self) -> list[str]:
        """Files or folders the driver created for these channels; a worker that outlives
        a killed driver removes them, since the driver cannot."""
        return self.codec.leftover_paths()

    def doing(self, worker: int) -> str:
        """What ``worker`` was doing, for the message when it dies ('' if only its instances)."""
        return ""

    def serve(self, plan: Plan, worker: int, link: Any, where: str, tuning: Tuning) -> None:
        """Run the engine in a worker process: THE executor loop over the instances the
        plan places on ``worker``, then serve late credits until the driver says quit.
        (The dynamic mappings' queues run the dynamic engine instead.)"""
        transport = self.open(worker)
        try:
            executor = Executor(plan, worker, transport, link, where=where, tuning=tuning)
            with sampling(executor.live_rows, live_sender(link, worker), tuning.live_s):
                stats = executor.run()
            link.flush_results()
            link.send(("done", stats))
            while transport.recv() != QUIT:
                pass
        finally:
            transport.close()


def live_sender(link: Any, worker: int) -> Callable[[list[Any]], None]:
    """How a worker's live-counters thread reports: a message on its pipe to the driver."""
    return lambda rows: link.send((LIVE_KIND, (worker, rows)))


@dataclass(frozen=True)
class WorkerStart:
    """What every worker is given besides the plan and its own pipe."""

    driver_pid: int
    lifeline: FdHandle | None
    leftovers: list[str]
    module_files: list[tuple[str, str]]
    levels: dict[str, int]
    tuning: Tuning
    stacks_on_sigusr1: bool = False  # as the driver (the dispel4py command) does
