"""``mpi``: every MPI rank is a worker; ``mpiexec -n N dispel4py mpi <workflow>``.

Every rank loads the workflow; rank 0 makes the plan and broadcasts its placement and
inputs keyed by PE ids (the original broadcast PE objects and lost them, bug B8), so any
N >= 1 runs any graph. Data moves with ``mpi4py.util.pkl5`` (pickle protocol 5, messages
over 2 GiB work). Results, stats and the end of the run are reported to rank 0, which
alone prints. An exception on any rank is logged once by that rank, which then aborts
the communicator so that every rank ends at once with a non-zero exit.

MPI is initialised when this mapping is instantiated, never at import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from collections.abc import Mapping as MappingABC
from typing import Any

from dispel4py.errors import Dispel4PyError, GraphError, UsageError, WorkflowFailed
from dispel4py.executor import Executor
from dispel4py.mappings.base import Mapping, ResultBuffer, ResultCollector
from dispel4py.plan import Plan
from dispel4py.result import InstanceStats
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["MPIMapping"]

_log = logging.getLogger(__name__)
_DATA, _CONTROL = 10, 11
_QUIT = ("Q",)
_MAX_NAP_S = 0.001  # longest sleep between polls while idle: idle ranks must not spin


class _MPITransport:
    """Point-to-point messages; rank 0 also takes the control messages of the run."""

    def __init__(self, comm: Any, collector: ResultCollector | None) -> None:
        from mpi4py.util import pkl5

        blocksize = os.environ.get("DISPEL4PY_MPI_BLOCKSIZE")  # exercise the >2 GiB path in tests
        if blocksize:
            pkl5._bigmpi.blocksize = int(blocksize)
        self.comm = pkl5.Intracomm(comm)
        self.collector = collector
        self.pending: list[Any] = []
        self.done: dict[int, list[InstanceStats]] = {}

    def send(self, worker: int, message: Any, tag: int = _DATA) -> None:
        self.pending.append(self.comm.isend(message, dest=worker, tag=tag))
        if len(self.pending) > 64:
            self._progress()

    def _progress(self) -> None:
        self.pending = [r for r in self.pending if not r.test()[0]]

    def recv(self) -> Any:
        """The next data message (control messages are handled on the way)."""
        while True:
            tag, payload = self._next()
            if tag != _CONTROL:
                return payload

    def wait_for_all_done(self, size: int) -> None:
        while len(self.done) < size:
            self._next()

    def _next(self) -> tuple[int, Any]:
        """Wait for any message, polling with a growing nap so idle ranks do not spin."""
        nap = 0.0
        while True:
            status = _status()
            message = self.comm.improbe(status=status)
            if message is not None:
                break
            self._progress()
            time.sleep(nap)
            nap = min(_MAX_NAP_S, nap * 2 or 0.00002)
        payload = message.recv()
        tag = status.Get_tag()
        if tag == _CONTROL:
            self._control(status.Get_source(), payload)
        return tag, payload

    def _control(self, source: int, payload: Any) -> None:
        kind = payload[0]
        if kind == "results" and self.collector is not None:
            for pe_id, output, items in payload[1]:
                self.collector.extend(pe_id, output, items)
        elif kind == "done":
            self.done[source] = payload[1]

    def finish(self) -> None:
        """Complete every send before the rank leaves."""
        for request in self.pending:
            request.wait()
        self.pending = []


def _status() -> Any:
    from mpi4py import MPI

    return MPI.Status()


def _reporter(transport: _MPITransport) -> ResultCollector | ResultBuffer:
    """Rank 0 keeps collected outputs where the result is built; other ranks ship them to it."""
    if transport.collector is not None:
        return transport.collector
    return ResultBuffer(lambda batch: transport.send(0, ("results", batch), tag=_CONTROL))


class MPIMapping(Mapping):
    name = "mpi"
    summary = "MPI ranks: mpiexec -n N dispel4py mpi ..."

    def __init__(self, options: MappingABC[str, Any] | None = None) -> None:
        super().__init__(options)
        from mpi4py import MPI  # initialises MPI: only now that the mpi mapping runs

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.primary = self.rank == 0

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument(
            "-n",
            "--num_processes",
            type=int,
            default=None,
            help="optional: must equal the MPI world size (mpiexec -n N)",
        )
        parser.add_argument(
            "-s",
            "--simple",
            action="store_true",
            help="partitioned placement: replicate the non-source PEs on every rank",
        )

    def num_workers(self) -> int:
        wanted = self.options.get("num_processes")
        if wanted is not None and wanted != self.size:
            raise UsageError(
                f"-n {wanted} does not match the MPI world size {self.size}: start the run with "
                f"'mpiexec -n {wanted} dispel4py mpi ...', or leave out -n"
            )
        return self.size

    def make_plan(
        self,
        graph: WorkflowGraph,
        inputs: MappingABC[Any, Any] | None,
        collect: MappingABC[str, list[str]] | None,
    ) -> Plan:
        """Rank 0 plans; the others adopt its placement and inputs (keyed by PE ids)."""
        with self.setting_up():
            plan = super().make_plan(graph, inputs, collect)
        shared = self.comm.bcast(
            (sorted(plan.pes), plan.placement, plan.inputs, plan.collect) if self.primary else None, root=0
        )
        ids, plan.placement, plan.inputs, plan.collect = shared
        if ids != sorted(plan.pes):
            raise GraphError(
                f"rank {self.rank} built a different workflow than rank 0 (PE ids {sorted(plan.pes)} vs "
                f"{ids}); every rank must build the same graph"
            )
        return plan

    @contextlib.contextmanager
    def setting_up(self) -> Iterator[None]:
        """Every rank learns whether any rank failed, before anything collective.

        A failure on one rank only (a file missing on one node) must not leave the others
        waiting in a broadcast: all ranks raise, rank 0 reports the first failure once.
        """
        error: Dispel4PyError | None = None
        try:
            yield
        except Dispel4PyError as exc:
            error = exc
        outcomes = self.comm.allgather(None if error is None else (str(error), error.exit_code))
        failed = [(rank, outcome) for rank, outcome in enumerate(outcomes) if outcome is not None]
        if not failed:
            return
        rank, (message, code) = failed[0]
        if error is None or rank != self.rank:
            error = Dispel4PyError(message if rank == 0 else f"on rank {rank}: {message}")
            error.exit_code = code
        error.quiet = not self.primary
        raise error

    def execute(self, plan: Plan, collector: ResultCollector) -> list[InstanceStats] | None:
        transport = _MPITransport(self.comm, collector if self.primary else None)
        reporter = _reporter(transport)
        where = f"rank {self.rank} on {socket.gethostname()}"
        try:
            executor = Executor(plan, self.rank, transport, reporter, where=where)
            stats = executor.run()
            reporter.flush_results()
        except Exception as exc:
            self._abort(exc)
        if not self.primary:
            transport.send(0, ("done", stats), tag=_CONTROL)
            while transport.recv() != _QUIT:  # serve late credits until rank 0 ends the run
                pass
            transport.finish()
            return None
        transport.done[0] = stats
        transport.wait_for_all_done(self.size)
        for rank in range(1, self.size):
            transport.send(rank, _QUIT)
        transport.finish()
        return [s for rank in sorted(transport.done) for s in transport.done[rank]]

    def _abort(self, exc: BaseException) -> None:
        """Say what failed, once, from the failing rank; then end every rank."""
        if isinstance(exc, WorkflowFailed):
            text = f"{exc}\n{exc.user_traceback}".rstrip()
        else:
            text = f"rank {self.rank} on {socket.gethostname()} failed: {type(exc).__name__}: {exc}"
        _log.critical("dispel4py: error: %s", text)
        for handler in logging.getLogger("dispel4py").handlers + logging.getLogger().handlers:
            handler.flush()
        self.comm.Abort(1)
