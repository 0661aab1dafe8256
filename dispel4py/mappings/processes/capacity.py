"""How many worker processes this machine takes: a warning far above its cores, and one
clear error when the operating system refuses a process or a thread.

dispel4py starts as many workers as ``-n`` asks for, as ``multiprocessing.Pool(N)`` and
Dask's ``LocalCluster(n_workers=N)`` do: a PE that mostly waits (a remote query, a sleep)
runs faster on more workers than cores, so no number is capped. Far above the cores
(``PER_CORE`` workers per core, and at least ``AT_LEAST``) a run says once that each worker
is a whole Python process, so that ``-n 1000`` on a laptop is a choice, not a typo that
takes minutes to show. When the operating system refuses (a process limit, ``ulimit -u``,
a cgroup's ``pids.max``, memory), the run ends with one line naming the worker and the
limit, and every worker already started is stopped by the pool as for any other failure.
"""

from __future__ import annotations

import errno
import logging
import os

from dispel4py.errors import ResourcesRefused, thread_refused

__all__ = ["PER_CORE", "AT_LEAST", "warn_far_above_cores", "refused_by_os", "refused_error"]

_log = logging.getLogger("dispel4py.engine")

PER_CORE = 8
AT_LEAST = 32


def warn_far_above_cores(num: int, cores: int | None = None) -> bool:
    """Log the warning when ``num`` workers is far above the cores; True when it did."""
    cores = cores or os.cpu_count() or 1
    if num <= max(AT_LEAST, PER_CORE * cores):
        return False
    _log.warning(
        "-n %d is far above this machine's %d core%s: every worker is a Python process of its "
        "own (start-up time, memory); unless the PEs mostly wait, a run is fastest with -n near %d",
        num,
        cores,
        "" if cores == 1 else "s",
        cores,
    )
    return True


def refused_by_os(exc: BaseException) -> bool:
    """True for the operating system refusing a process or thread: ``fork`` failing with
    EAGAIN/ENOMEM, or Python's ``can't start new thread``."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.EAGAIN, errno.ENOMEM)
    return thread_refused(exc)


def refused_error(what: str, workers: int | str | None, exc: BaseException) -> ResourcesRefused:
    """The one-line error: ``what`` (e.g. ``worker 37 of 1000``) could not start a process
    or thread; ``workers``: the run's, when known."""
    kind = "thread" if isinstance(exc, RuntimeError) else "process"
    limits = "this machine's limits allow (processes per user, pids, memory)"
    why = f"{workers} workers are more than {limits}" if workers else f"more processes than {limits}"
    return ResourcesRefused(
        f"the operating system refused a new {kind} for {what} ({exc}): {why}; use a smaller -n/--num"
    )
