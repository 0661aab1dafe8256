"""What the ``mpi`` mapping does about MPICH's process manager, hydra, on the rank's side.

* :class:`Guard` starts and talks to this rank's guard process (``guard.py``), which
  reports and ends the run if the rank dies without aborting it;
* :func:`unlink_run_files` removes MPICH's ``/dev/shm/mpich_shm_*`` and hydra's
  ``/tmp/hydra_hwloc_xmlfile_*`` as soon as every rank has them open, so that a run that
  is aborted or killed leaves nothing behind (only a clean ``MPI_Finalize`` removes them);
* :func:`report_token` names the run's report token, shared by the ranks of one host.

Everything here is Linux and hydra specific and does nothing elsewhere.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from dispel4py.mappings.mpi import guard

__all__ = [
    "STOP_SIGNALS",
    "Guard",
    "end_mpi_job_started_without_us",
    "hydra_pmi_fd",
    "report_token",
    "unlink_run_files",
]

_log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # what mpiexec forwards to the ranks


class Guard:
    """This rank's handle on its guard process (see ``guard.py``)."""

    def __init__(self, process: subprocess.Popen[bytes], control: int) -> None:
        self.process = process
        self.pid = process.pid
        self.control = control

    @classmethod
    def start(cls, pmi_fd: int | None, token: socket.socket, name: str) -> Guard | None:
        """Start the guard under hydra (which passes PMI_FD) on Linux, before MPI starts threads.

        The guard shares the rank's report-token socket ``token`` (see ``guard.py``).
        """
        if pmi_fd is None or not hasattr(os, "pidfd_open"):
            return None
        read_end, control = os.pipe()
        fds = (pmi_fd, read_end, token.fileno())
        command = [sys.executable, "-I", "-S", guard.__file__, str(os.getpid()), *map(str, fds), name]
        try:
            with _stop_signals_ignored():  # no stop signal may end it before it ignores them
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, pass_fds=fds, start_new_session=True
                )
        except OSError as exc:
            _log.debug("no guard process for this rank: %s", exc)
            os.close(control)
            return None
        finally:
            os.close(read_end)
        handle = cls(process, control)
        atexit.register(handle.release)
        return handle

    def tell(self, line: str) -> None:
        if self.control >= 0:
            with contextlib.suppress(OSError):
                os.write(self.control, (line.replace("\n", " ") + "\n").encode())

    def release(self) -> None:
        """The rank ends normally: its guard leaves (it must not keep the rank's output open)."""
        if self.control < 0:
            return
        self.tell("done")
        os.close(self.control)
        self.control = -1
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # safety net: a guard never outlives its rank for long
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def _stop_signals_ignored() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM/SIGHUP meanwhile (in the main thread only; a no-op elsewhere)."""
    try:
        saved = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    except ValueError:  # not the main thread
        saved = {}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def hydra_pmi_fd() -> int | None:
    """The PMI socket hydra gave this rank (``PMI_FD``), or None under another launcher."""
    value = os.environ.get("PMI_FD", "")
    return int(value) if value.isdigit() else None


def end_mpi_job_started_without_us(code: int) -> None:
    """A process started by mpiexec (hydra) fails before it started MPI: end the whole job.

    Otherwise the other ranks would wait in ``MPI_Init`` for this one forever (a file
    check that fails on one rank only, say). Its error is on stderr already; hydra must
    read it before the abort. Once MPI is started, the ``mpi`` mapping ends failed runs.
    """
    pmi_fd = hydra_pmi_fd()
    if pmi_fd is None or "mpi4py.MPI" in sys.modules:
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    guard.wait_until_read(2, within=1.0)
    guard.pmi_abort(pmi_fd, code)


def report_token(pmi_fd: int | None) -> str:
    """A name shared by the ranks of this run on this host: under hydra, from the proxy that
    started them (their parent); elsewhere this process's own."""
    owner = os.getppid() if pmi_fd is not None else os.getpid()
    return f"dispel4py-mpi-{owner}-{guard.process_start_time(owner)}"


def unlink_run_files() -> None:
    """Unlink MPICH's shared memory and hydra's topology file (all ranks have them open now)."""
    for path in _mapped_shared_memory() | _proxy_topology_files():
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.unlink(path)


def _mapped_shared_memory() -> set[str]:
    """MPICH's ``/dev/shm/mpich_shm_*`` segments this rank has mapped."""
    return guard.mpich_shm_of("self")


def _proxy_topology_files() -> set[str]:
    """The ``/tmp/hydra_hwloc_xmlfile_*`` that hydra's proxy (our parent) keeps open.

    The proxy hands its path to the ranks over PMI (``PMI_hwloc_xmlfile``), which MPICH
    reads during ``MPI_Init``; the proxy removes it only when it finalizes normally.
    """
    fd_dir = Path(f"/proc/{os.getppid()}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return set()
    found = set()
    for entry in entries:
        with contextlib.suppress(OSError):
            target = os.readlink(entry)
            if os.path.basename(target).startswith("hydra_hwloc_xmlfile_"):
                found.add(target)
    return found
