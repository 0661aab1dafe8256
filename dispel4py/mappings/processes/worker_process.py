"""What runs in a local worker process, and how the plan gets there.

* :func:`worker_main` is the worker's entry point: it ties its life to the driver
  (``processes/lifetime.py``), routes its logging to the driver, loads the plan (pickled with dill by
  :func:`plan_blob` unless the process was forked) and serves its channels; an error
  reaches the driver as data (``_DriverLink``).
* :func:`module_files` and :func:`load_plan` let a spawned worker (or ``dispel4py worker``
  on another host) import the workflow modules the plan's PEs come from.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import sys
from typing import Any

from dispel4py.engine.plan import Plan
from dispel4py.engine.signals import flush_stack_dumps, stacks_on_sigusr1
from dispel4py.errors import Dispel4PyError, TransportError
from dispel4py.mappings.base import ResultBuffer
from dispel4py.mappings.processes.capacity import refused_by_os, refused_error
from dispel4py.mappings.processes.channels import Channels, WorkerStart
from dispel4py.mappings.processes.lifetime import bind_to_driver, driver_gone
from dispel4py.mappings.processes.link import FdHandle, LinkWriter

_logger = logging.getLogger(__name__)

__all__ = ["emit_log", "load_plan", "log_levels", "module_files", "plan_blob", "worker_main"]


# -- helpers for the driver ------------------------------------------------------------------
def plan_blob(plan: Plan) -> bytes:
    """The plan pickled with dill, for start methods that do not fork."""
    import dill

    try:
        return dill.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL, recurse=True)
    except Exception as exc:
        for pe_id, pe in plan.pes.items():
            try:
                dill.dumps(pe, recurse=True)
            except Exception as pe_exc:
                raise TransportError(
                    f"PE {pe_id} cannot be sent to worker processes: {type(pe_exc).__name__}: "
                    f"{pe_exc}; make it picklable or use --start-method fork"
                ) from pe_exc
        raise TransportError(f"the plan cannot be sent to worker processes: {exc}") from exc


def module_files(plan: Plan) -> list[tuple[str, str]]:
    """Workflow modules loaded from files, so a spawned worker can load them too."""
    found = []
    for pe in plan.pes.values():
        module = sys.modules.get(type(pe).__module__)
        path = getattr(module, "__file__", None)
        if module is not None and path and module.__name__ != "__main__":
            found.append((module.__name__, path))
    return sorted(set(found))


def log_levels() -> dict[str, int]:
    return {name: logging.getLogger(name).getEffectiveLevel() for name in ("dispel4py", "dispel4py.pe")}


def emit_log(name: str, level: int, text: str) -> None:
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        logger.handle(logging.LogRecord(name, level, "", 0, text, None, None))


# -- the worker process ------------------------------------------------------------------------
class _DriverLink(logging.Handler):
    """Everything a worker tells the driver: results, logs, stats, errors."""

    def __init__(self, writer: FdHandle) -> None:
        super().__init__()
        self.writer = LinkWriter(writer)
        self.pid = os.getpid()
        self.results = ResultBuffer(lambda batch: self.send(("results", batch)))
        self.result_list = self.results.result_list
        self.flush_results = self.results.flush_results

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.writer.send_bytes(data)
        except OSError:
            if os.getpid() != self.pid:  # a process the PE forked: its own business
                raise
            driver_gone()

    def emit(self, record: logging.LogRecord) -> None:
        self.send(("log", (record.name, record.levelno, record.getMessage())))

    def close(self) -> None:
        self.writer.close()
        super().close()


def worker_main(payload: Any, start: WorkerStart, worker: int, writer: FdHandle, channels: Channels) -> None:
    link = _DriverLink(writer)
    try:
        bind_to_driver(start.driver_pid, start.lifeline, start.leftovers)
    except RuntimeError as exc:  # its watch thread refused: said by the driver, in one line
        if not refused_by_os(exc):
            raise
        _send_error(link, refused_error(f"worker {worker}", _worker_count(payload), exc))
        link.close()
        return
    if start.stacks_on_sigusr1:  # spawned workers did not inherit it; forked ones, the driver's label
        stacks_on_sigusr1(f"worker {worker}")
    _route_logging(link, start.levels)
    try:
        plan = payload if isinstance(payload, Plan) else load_plan(payload, start.module_files)
        where = f"worker {worker}, pid {os.getpid()} on {socket.gethostname()}"
        channels.serve(plan, worker, link, where, start.tuning)
    except Dispel4PyError as exc:
        _flush_before_error(link)
        _send_error(link, exc)
    except BaseException as exc:  # anything else still reaches the driver, as data
        _flush_before_error(link)
        if refused_by_os(exc):  # a thread or process the OS refused: one clear line
            _send_error(link, refused_error(f"worker {worker}", _worker_count(payload), exc))
        else:
            _send_error(link, Dispel4PyError(f"worker {worker} failed: {type(exc).__name__}: {exc}"))
    finally:
        link.close()
        flush_stack_dumps()  # a kill -USR1 dump still on its way to stderr


def _worker_count(payload: Any) -> int | None:
    """The run's workers, for a message (None while the plan is still a blob)."""
    return payload.num_workers if isinstance(payload, Plan) else None


def _flush_before_error(link: _DriverLink) -> None:
    """Results written before the failure reach the driver before it (a streamed run yields
    them, then raises); results that cannot be sent give way to the error itself."""
    try:
        link.flush_results()
    except Exception as exc:
        _logger.debug("results not sent before the error: %s", exc)


def _send_error(link: _DriverLink, exc: Dispel4PyError) -> None:
    try:
        link.send(("error", exc))
    except Exception:
        link.send(("error", Dispel4PyError(str(exc))))


def load_plan(blob: bytes, module_files: list[tuple[str, str]]) -> Plan:
    import importlib
    import importlib.util

    import dill

    for name, path in module_files:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    return dill.loads(blob)


def _route_logging(link: _DriverLink, levels: dict[str, int]) -> None:
    root = logging.getLogger("dispel4py")
    root.handlers[:] = [link]
    root.propagate = False
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
