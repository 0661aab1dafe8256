"""A worker lives no longer than its driver, whatever the start method.

* **The driver's pidfd.** The driver opens a pidfd of itself (Linux >= 5.3) and hands it
  to every worker. A daemon thread in the worker blocks on it; when the driver ends, even
  by SIGKILL, the thread removes what the driver can no longer remove (the forkserver's
  ``pymp-*`` folder, the transport's files) and ends the worker with ``os._exit``: there is
  nobody left to report to, so nothing is printed. ``PR_SET_PDEATHSIG`` alone is not
  enough: it fires on the death of the *parent*, and under ``forkserver`` the parent is
  the forkserver, not the driver. It stays as the fallback where pidfds are missing
  (there it covers ``fork`` and ``spawn`` only).
* **The forkserver's "alive" pipe.** The forkserver (and with it the resource tracker)
  runs until every holder of that pipe's write end has closed it, and it hands a copy to
  each child it forks. A worker never uses it (it would start a forkserver of its own), so
  it closes its copy: otherwise the workers, or anything a PE forks, keep the forkserver
  and the tracker alive after the driver is gone.
* **A broken pipe to the driver** means the driver is gone or has stopped listening (it
  is stopping the workers): the worker ends at once, quietly (:func:`driver_gone`).
* **Signals.** Workers ignore SIGINT and SIGHUP, which a terminal sends to the whole
  process group, so that the driver alone decides how the run stops; they keep SIGTERM's
  default action, which is how the driver stops them.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import tempfile
import threading
from typing import Any

from dispel4py.errors import UsageError
from dispel4py.mappings.processes.link import FdHandle

__all__ = [
    "driver_lifeline",
    "driver_leftovers",
    "death_watch",
    "bind_to_driver",
    "driver_gone",
    "remove_folder",
    "socket_path_error",
]

_ORPHANED = 1  # exit status of a worker that outlived its driver (nobody reads it)


def driver_lifeline() -> FdHandle | None:
    """A pidfd of this process (the driver), or ``None`` where the system has none."""
    try:
        return FdHandle(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return None


def driver_leftovers(ctx: Any) -> list[str]:
    """What a worker must remove if the driver dies: the forkserver's folder."""
    if ctx.get_start_method() != "forkserver":
        return []
    from multiprocess import util

    return [util.get_temp_dir()]  # the folder the forkserver's socket is (or will be) in


def socket_path_error(exc: BaseException) -> UsageError | None:
    """The usage error for a forkserver that cannot listen because the temporary folder's
    path is too long for a Unix socket (108 bytes with the names multiprocess adds: a
    deep ``TMPDIR``, e.g. a test runner's or a batch system's per-job folder); else None."""
    if not (isinstance(exc, OSError) and "AF_UNIX path too long" in str(exc)):
        return None
    folder = tempfile.gettempdir()
    return UsageError(
        f"--start-method forkserver listens on a Unix socket in the temporary folder, and "
        f"{folder} ({len(folder)} characters) makes its path too long: set TMPDIR to a "
        "shorter folder (e.g. TMPDIR=/tmp), or use --start-method fork or spawn"
    )


def death_watch(process: Any, start_method: str) -> tuple[int, FdHandle | None]:
    """An fd that becomes readable when ``process`` (a started worker) has ended, and the
    handle to close afterwards, if it is a new one.

    Under fork and spawn, multiprocess's sentinel is a pipe whose write end the worker
    holds, and so does anything the worker forks: a PE's helper process would hide the
    worker's death for as long as it runs. A pidfd is about the process itself, and names
    it safely: the worker is our child, so its pid is not reused before we reap it. Under
    forkserver the sentinel is written by the forkserver when it reaps the worker, so it
    is about the process already (and a pidfd could name a recycled pid).
    """
    if start_method != "forkserver":
        try:
            pidfd = FdHandle(os.pidfd_open(process.pid))
        except (AttributeError, OSError):
            pass
        else:
            return pidfd.fd, pidfd
    return process.sentinel, None


def bind_to_driver(driver_pid: int, lifeline: FdHandle | None, leftovers: list[str]) -> None:
    """In a new worker: set its signals and end it when the driver ends."""
    for name, action in (("SIGINT", signal.SIG_IGN), ("SIGHUP", signal.SIG_IGN), ("SIGTERM", signal.SIG_DFL)):
        if hasattr(signal, name):  # SIGTERM: a forked worker inherits the CLI's handler
            signal.signal(getattr(signal, name), action)
    _close_forkserver_alive_fd()
    if lifeline is None:
        _die_with_parent(driver_pid)
        return
    watch = threading.Thread(
        target=_watch_driver, args=(lifeline, leftovers), name="dispel4py-driver-watch", daemon=True
    )
    watch.start()


def driver_gone() -> None:
    """End this worker now: its driver no longer listens, so there is nothing to report."""
    os._exit(_ORPHANED)


def _watch_driver(lifeline: FdHandle, leftovers: list[str]) -> None:
    poller = select.poll()
    poller.register(lifeline.fd, select.POLLIN)
    while not poller.poll():  # readable once the driver has ended
        pass
    for path in leftovers:
        remove_folder(path)
    driver_gone()


def remove_folder(path: str, attempts: int = 100) -> None:
    """Remove ``path`` and everything in it, even while other processes still add files.

    ``rmtree`` lists a folder, removes what it listed, then the folder: a file another
    worker (or this one's main thread) writes in between makes the last step fail, and the
    folder would stay. Nobody makes the folder again once it is gone (a file cannot be
    created in a folder that does not exist), so trying until it is gone ends: each round
    removes every file the writers had made, and the writers are bounded (budget, credits).
    """
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return


def _close_forkserver_alive_fd() -> None:
    if "multiprocess.forkserver" not in sys.modules:  # not started by a forkserver
        return
    server: Any = getattr(sys.modules["multiprocess.forkserver"], "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is None or getattr(server, "_forkserver_pid", None) is not None:
        return  # not inherited: this process runs a forkserver of its own
    server._forkserver_alive_fd = None
    os.close(fd)


def _die_with_parent(driver_pid: int) -> None:
    """Linux without pidfds: SIGKILL when the parent dies, if the parent is the driver."""
    if not sys.platform.startswith("linux") or os.getppid() != driver_pid:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != driver_pid:  # the driver died before the call
        driver_gone()
