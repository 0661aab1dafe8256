"""``mpi``: every MPI rank is a worker; ``mpiexec -n N dispel4py mpi <workflow>``.

Every rank loads the workflow; rank 0 makes the plan and broadcasts its placement and
inputs keyed by PE ids (the original broadcast PE objects and lost them, bug B8), so any
N >= 1 runs any graph. Data moves with ``mpi4py.util.pkl5`` (pickle protocol 5, messages
over 2 GiB work). Results, stats and the end of the run are reported to rank 0, which
alone prints; warnings about the run are logged by rank 0 only.

**Failures end every rank at once, said once.** An exception (or ``sys.exit``, or a
SIGINT/SIGTERM/SIGHUP, which mpiexec forwards to every rank) is logged by the rank as one
``dispel4py: error:`` line naming the PE instance and rank; the rank then asks the
process manager to end the run (PMI ``abort`` under hydra, else ``MPI_Abort``) and
exits at once (``os._exit``), as ``MPI_Abort`` returns with MPICH. mpiexec stops every rank and
exits with that code: 1 for a failure, 128 + the signal number for a signal (130 for
Ctrl-C). A rank that dies without aborting (``os._exit``, SIGKILL, a crash) is reported,
with its pid, host and PE instances, by its guard process (``guard.py``), and the
run exits 1. Only one process per host reports (the first to claim the run's report
token): on several hosts, at most one line per host. Hydra itself still prints two lines
on stdout on the first Ctrl-C ("Sending Ctrl-C to processes as requested").

**Nothing left behind.** MPICH keeps its shared memory in ``/dev/shm/mpich_shm_*`` and
hydra's proxy writes the node topology to ``/tmp/hydra_hwloc_xmlfile_*``; both are only
removed by a clean ``MPI_Finalize``. Once every rank has started (a barrier), the ranks
unlink them: the mappings stay valid, and an aborted run leaves nothing. A rank that dies
before (Ctrl-C while another rank is still starting) has its segments unlinked by its
guard (``guard.py``).

MPI is initialised when this mapping is instantiated, never at import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from collections.abc import Mapping as MappingABC
from typing import Any, NoReturn

from dispel4py.engine.executor import Executor
from dispel4py.engine.plan import Plan, make_plan
from dispel4py.engine.replay import replay_hint
from dispel4py.engine.result import InstanceStats
from dispel4py.engine.tuning import Tuning
from dispel4py.errors import Dispel4PyError, GraphError, UsageError, WorkflowFailed
from dispel4py.mappings.base import Mapping, ResultCollector, static_place
from dispel4py.mappings.mpi import guard, hydra
from dispel4py.mappings.mpi import live as mpi_live
from dispel4py.mappings.mpi.transport import CONTROL, QUIT, MPITransport, results_reporter
from dispel4py.observe.live import DEFAULT_EVERY_S
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["MPIMapping"]

_log = logging.getLogger(__name__)
_REPORTER_GRACE_S = 2.0  # a rank that is not the reporter waits this long for it to abort the run
_STOP_REASONS = {"SIGINT": "interrupted", "SIGTERM": "terminated", "SIGHUP": "hangup"}


def _launcher_size() -> int | None:
    """The world size mpiexec (hydra, Open MPI) announces to its ranks, read without MPI."""
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def _hosting(plan: Plan, rank: int) -> str:
    """``Work1 (instance 1), Sink2 (instances 3, 4)``: the PE instances on ``rank``."""
    by_pe: dict[str, list[int]] = {}
    for iid in plan.hosted(rank):
        by_pe.setdefault(plan.pe_of(iid), []).append(iid)
    return ", ".join(
        f"{pe} (instance{'s' if len(iids) > 1 else ''} {', '.join(map(str, iids))})"
        for pe, iids in by_pe.items()
    )


def _flush_logging() -> None:
    for handler in logging.getLogger("dispel4py").handlers + logging.getLogger().handlers:
        handler.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()


class MPIMapping(Mapping):
    name = "mpi"
    summary = "MPI ranks: mpiexec -n N dispel4py mpi ..."
    worker_word = "rank"
    sized_by_launcher = True
    stops_early = False  # a stop ends every rank's process (_end_run): a stream runs to its end

    def __init__(self, options: MappingABC[str, Any] | None = None) -> None:
        super().__init__(options)
        self.pmi_fd = hydra.hydra_pmi_fd()
        self.token = hydra.report_token(self.pmi_fd)
        self.token_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # bound to claim it
        self.guard = hydra.Guard.start(self.pmi_fd, self.token_socket, self.token)  # before MPI_Init
        from mpi4py import MPI  # initialises MPI: only now that the mpi mapping runs

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.primary = self.rank == 0
        self.where = f"rank {self.rank} on {socket.gethostname()}"
        self._ending = False
        self._live = False  # live counters wanted (rank 0 has a board; said with the plan)
        self._saved_handlers: dict[int, Any] = {}
        self._tell_guard(f"rank {self.rank} (pid {os.getpid()} on {socket.gethostname()})")
        self._handle_stop_signals()
        self._tell_guard_peers()  # a collective: every rank has attached MPICH's shared memory
        hydra.unlink_run_files()  # and read hydra's topology file
        if self.guard is not None:
            self.guard.tell("unlinked")  # it stops looking for them (see guard.py)

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
        cls.add_layout_arguments(parser)
        cls.add_tuning_arguments(parser)

    @classmethod
    def preview_plan(
        cls, options: MappingABC[str, Any], graph: WorkflowGraph, inputs: MappingABC[Any, Any] | None
    ) -> Plan:
        """``--plan``: the layout for ``-n N`` ranks (default: the launcher's world size, else
        1), without starting MPI."""
        ranks = options.get("num_processes") or _launcher_size() or 1
        if ranks < 1:
            raise UsageError(f"-n/--num_processes must be at least 1 (got {ranks})")
        return make_plan(
            graph, inputs, ranks, partitioned=bool(options.get("simple")), place_fn=static_place(options)
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
        """Rank 0 plans; the others adopt its placement and inputs (keyed by PE ids).

        Only rank 0 checks the inputs: it alone reports their errors and warnings.
        """
        with self.setting_up():
            plan = super().make_plan(graph, inputs if self.primary else None, collect)
        live = self.board is not None and mpi_live.live_supported(self.MPI)
        recorder = self.options.get("provenance")  # one run id for every rank (engine/recording.py)
        shared = self.comm.bcast(
            (sorted(plan.pes), plan.placement, plan.inputs, plan.collect, live, recorder)
            if self.primary
            else None,
            root=0,
        )
        ids, plan.placement, plan.inputs, plan.collect, self._live, recorder = shared
        if recorder is not None:
            self.options["provenance"] = recorder
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
        transport = MPITransport(self.comm, collector if self.primary else None)
        reporter = results_reporter(transport, bool(self.options.get("streaming")))
        self._tell_guard(
            f"rank {self.rank} (pid {os.getpid()} on {socket.gethostname()}, "
            f"hosting {_hosting(plan, self.rank) or 'no PE'})"
        )
        try:
            tuning = Tuning.from_options(self.options)
            executor = Executor(plan, self.rank, transport, reporter, where=self.where, tuning=tuning)
            every = self.board.every if self.board is not None else DEFAULT_EVERY_S
            live = mpi_live.MPILive(self.comm, self.board, every) if self._live else None
            with live.sampling(executor.live_rows) if live is not None else contextlib.nullcontext():
                stats = executor.run()
            reporter.flush_results()
            result = self._end_of_stream(transport, stats)
            if live is not None:
                live.close()
            return result
        except BaseException as exc:  # whatever stops this rank must stop every rank, said once
            self._abort(exc)
        finally:  # not reached after _abort, which never returns
            self._restore_stop_signals()

    def _end_of_stream(
        self, transport: MPITransport, stats: list[InstanceStats]
    ) -> list[InstanceStats] | None:
        """Rank 0 gathers every rank's stats, then lets them go."""
        if not self.primary:
            transport.send(0, ("done", stats), tag=CONTROL)
            while transport.recv() != QUIT:  # serve late credits until rank 0 ends the run
                pass
            transport.finish()
            return None
        transport.done[0] = stats
        transport.wait_for_all_done(self.size)
        for rank in range(1, self.size):
            transport.send(rank, QUIT)
        transport.finish()
        return [s for rank in sorted(transport.done) for s in transport.done[rank]]

    # -- failures ------------------------------------------------------------------------
    def _abort(self, exc: BaseException) -> NoReturn:
        """Say what failed (the PE, instance and rank when known), then end every rank."""
        if isinstance(exc, WorkflowFailed):
            self._end_run(f"{exc}\n{exc.user_traceback}".rstrip() + f"\n{replay_hint(exc)}".rstrip(), 1)
        if isinstance(exc, KeyboardInterrupt):  # a stop signal raised by a handler not ours
            code = getattr(exc, "exit_code", 130)
            self._end_run(f"{exc or 'interrupted'} [{self.where}]; every rank was stopped", code)
        if isinstance(exc, SystemExit):
            self._end_run(f"{self.where}: sys.exit({exc.code!r}) was called while the workflow ran", 1)
        self._end_run(f"{self.where} failed: {type(exc).__name__}: {exc}", getattr(exc, "exit_code", 1))

    def _end_run(self, text: str, code: int) -> NoReturn:
        """Log ``text`` (if this process reports for its host), abort the run, never return.

        Under hydra the rank sends PMI ``abort`` itself: ``MPI_Abort`` would add MPICH's own
        "Abort(1) on node ..." line. ``MPI_Abort`` can return with MPICH, and so does the
        PMI request: nothing of this rank may run after it.
        """
        self._ending = True
        reporter = guard.claim_report(self.token_socket, self.token) == guard.NEW
        if self.guard is not None:
            self.guard.tell(f"quiet {code}")  # this rank says it, and aborts with this code
        if reporter:
            _log.critical("dispel4py: error: %s", text)
            _flush_logging()
            if self.pmi_fd is not None:  # stderr is a pipe to hydra's proxy
                guard.wait_until_read(2, within=1.0)  # which must read it before the abort
        else:  # another rank of this host reports and aborts: let its line out first
            time.sleep(_REPORTER_GRACE_S)  # safety net only: that abort ends this rank sooner
        try:
            if self.pmi_fd is not None:
                guard.pmi_abort(self.pmi_fd, code)
            elif self.size > 1:  # another launcher; alone, this rank's exit is the end
                self.comm.Abort(code)
        finally:
            os._exit(code)

    def _tell_guard(self, who: str) -> None:
        """Describe this rank to its guard, for the line it writes if this rank dies."""
        if self.guard is not None:
            self.guard.tell(f"who {who}")

    def _tell_guard_peers(self) -> None:
        """Tell the guard the other ranks and guards of this host (it outwaits them)."""
        host = socket.gethostname()
        everyone = self.comm.allgather((host, os.getpid(), self.guard.pid if self.guard else 0))
        peers = [
            str(pid)
            for peer_host, rank_pid, guard_pid in everyone
            if peer_host == host and rank_pid != os.getpid()
            for pid in (rank_pid, guard_pid)
            if pid
        ]
        if self.guard is not None:
            self.guard.tell(f"peers {' '.join(peers)}")

    def _handle_stop_signals(self) -> None:
        """Until the run ends, SIGINT/SIGTERM/SIGHUP (which mpiexec forwards to every rank)
        end it, said once: without this, every rank would report its own interruption."""
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            for signum in hydra.STOP_SIGNALS:
                self._saved_handlers[signum] = signal.signal(signum, self._on_stop_signal)

    def _restore_stop_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # a streamed run (dispel4py.stream): release() restores them afterwards
        for signum, handler in self._saved_handlers.items():
            signal.signal(signum, handler)
        self._saved_handlers.clear()

    def release(self) -> None:
        self._restore_stop_signals()

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if self._ending:
            return
        name = signal.Signals(signum).name
        reason = _STOP_REASONS.get(name, "stopped")
        self._end_run(f"{reason} ({name}) [{self.where}]; every rank was stopped", 128 + signum)
