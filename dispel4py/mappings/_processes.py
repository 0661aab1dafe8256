"""Worker processes on this machine, shared by ``multi`` and ``zmq_multi``.

The driver (this process) starts one process per worker of the plan; each runs THE
executor loop over its instances, with the mapping's transport between workers. Workers
report to the driver over a private pipe: collected outputs, log records, stats, and
errors (as data). The driver waits on those pipes *and* the process sentinels, so a user
exception, a worker killed by a signal, or Ctrl-C ends the whole run at once and leaves no
child behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import signal
import socket
import sys
from abc import abstractmethod
from typing import Any

from dispel4py.errors import (
    Dispel4PyError,
    TransportError,
    UsageError,
    WorkerDied,
)
from dispel4py.executor import Executor
from dispel4py.mappings.base import Mapping, ResultBuffer, ResultCollector
from dispel4py.plan import Plan
from dispel4py.result import InstanceStats

__all__ = ["ProcessMapping", "Channels"]

_log = logging.getLogger(__name__)
_QUIT = ("Q",)


class Channels:
    """How workers reach each other: made by the driver, opened in each worker."""

    @abstractmethod
    def open(self, worker: int) -> Any:
        """The worker's transport: ``send(worker, msg)``, ``recv()``, ``close()``."""

    @abstractmethod
    def send_from_driver(self, worker: int, message: Any) -> None: ...

    def close(self) -> None:
        """Release what the driver created."""


class ProcessMapping(Mapping):
    """Placement on N local processes; subclasses choose the transport (``make_channels``)."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser | Any) -> None:
        parser.add_argument(
            "-n", "--num", type=int, default=None, help="worker processes (default: number of cores)"
        )
        parser.add_argument(
            "-s",
            "--simple",
            action="store_true",
            help="partitioned placement: replicate the non-source PEs on every worker "
            "(or use graph.partitions)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1024,
            help="items per message between workers (smaller for large items; default 1024)",
        )
        parser.add_argument(
            "--start-method",
            choices=("fork", "spawn", "forkserver"),
            default=None,
            help="how worker processes start (default: the platform's)",
        )

    def num_workers(self) -> int:
        num = self.options.get("num")
        if num is None:
            return os.cpu_count() or 1
        if num < 1:
            raise UsageError(f"-n/--num must be at least 1 (got {num})")
        return int(num)

    @abstractmethod
    def make_channels(self, ctx: Any, workers: int) -> Channels: ...

    def execute(self, plan: Plan, collector: ResultCollector) -> list[InstanceStats]:
        import multiprocess

        ctx = multiprocess.get_context(self.options.get("start_method"))
        channels = self.make_channels(ctx, plan.num_workers)
        batch = self.options.get("batch_size")
        batch = 1024 if batch is None else int(batch)
        if batch < 1:
            raise UsageError(f"--batch-size must be at least 1 (got {batch})")
        pool = _Pool(ctx, plan, channels, batch)
        try:
            return pool.run(collector)
        finally:
            pool.shutdown()
            channels.close()


class _Pool:
    def __init__(self, ctx: Any, plan: Plan, channels: Channels, batch: int) -> None:
        self.ctx, self.plan, self.channels, self.batch = ctx, plan, channels, batch
        self.processes: list[Any] = []
        self.readers: list[Any] = []

    def run(self, collector: ResultCollector) -> list[InstanceStats]:
        blob = _plan_blob(self.plan) if self.ctx.get_start_method() != "fork" else None
        levels = _log_levels()
        for worker in range(self.plan.num_workers):
            reader, writer = self.ctx.Pipe(duplex=False)
            payload = blob if blob is not None else self.plan
            process = self.ctx.Process(
                target=_worker_main,
                args=(payload, _module_files(self.plan), worker, self.channels, writer, levels, self.batch),
                name=f"dispel4py-worker-{worker}",
                daemon=True,
            )
            process.start()
            writer.close()
            self.processes.append(process)
            self.readers.append(reader)
        return self._collect(collector)

    def _collect(self, collector: ResultCollector) -> list[InstanceStats]:
        from multiprocess.connection import wait

        stats: list[InstanceStats] = []
        open_readers = dict(enumerate(self.readers))
        done: set[int] = set()
        sentinels = {p.sentinel: w for w, p in enumerate(self.processes)}
        while len(done) < len(self.processes):
            ready = wait(list(open_readers.values()) + list(sentinels))
            for obj in ready:
                if obj in sentinels:
                    worker = sentinels[obj]
                    if worker in open_readers:  # drain what it said before dying
                        continue
                    del sentinels[obj]
                    if worker not in done:
                        raise self._died(worker)
                    continue
                worker = next(w for w, r in open_readers.items() if r is obj)
                try:
                    message = pickle.loads(obj.recv_bytes())
                except (EOFError, OSError):
                    del open_readers[worker]
                    continue
                kind = message[0]
                if kind == "results":
                    for pe_id, output, items in message[1]:
                        collector.extend(pe_id, output, items)
                elif kind == "log":
                    _emit_log(*message[1])
                elif kind == "done":
                    stats.extend(message[1])
                    done.add(worker)
                elif kind == "error":
                    raise message[1]
        for worker in range(len(self.processes)):
            self.channels.send_from_driver(worker, _QUIT)
        for process in self.processes:
            process.join(timeout=10)
        return stats

    def _died(self, worker: int) -> WorkerDied:
        process = self.processes[worker]
        process.join(timeout=1)
        code = process.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        hosted = ", ".join(
            f"{self.plan.pe_of(i)}[{self.plan.placement.index_of[i]}]" for i in self.plan.hosted(worker)
        )
        return WorkerDied(f"worker {worker} died ({how}) hosting {hosted}")

    def shutdown(self) -> None:
        """Stop every worker still running (idempotent)."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join(timeout=2)
        for reader in self.readers:
            reader.close()
        self.processes, self.readers = [], []


# -- helpers for the driver ------------------------------------------------------------------
def _plan_blob(plan: Plan) -> bytes:
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


def _module_files(plan: Plan) -> list[tuple[str, str]]:
    """Workflow modules loaded from files, so a spawned worker can load them too."""
    found = []
    for pe in plan.pes.values():
        module = sys.modules.get(type(pe).__module__)
        path = getattr(module, "__file__", None)
        if module is not None and path and module.__name__ != "__main__":
            found.append((module.__name__, path))
    return sorted(set(found))


def _log_levels() -> dict[str, int]:
    return {name: logging.getLogger(name).getEffectiveLevel() for name in ("dispel4py", "dispel4py.pe")}


def _emit_log(name: str, level: int, text: str) -> None:
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        logger.handle(logging.LogRecord(name, level, "", 0, text, None, None))


# -- the worker process ------------------------------------------------------------------------
class _DriverLink(logging.Handler):
    """Everything a worker tells the driver: results, logs, stats, errors."""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn
        self.results = ResultBuffer(lambda batch: self.send(("results", batch)))
        self.result_list = self.results.result_list
        self.flush_results = self.results.flush_results

    def send(self, message: Any) -> None:
        self.conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def emit(self, record: logging.LogRecord) -> None:
        self.send(("log", (record.name, record.levelno, record.getMessage())))


def _worker_main(
    payload: Any,
    module_files: list[tuple[str, str]],
    worker: int,
    channels: Channels,
    conn: Any,
    levels: dict[str, int],
    batch_size: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C for everyone
    _die_with_parent()
    link = _DriverLink(conn)
    _route_logging(link, levels)
    transport = None
    try:
        plan = payload if isinstance(payload, Plan) else _load_plan(payload, module_files)
        transport = channels.open(worker)
        where = f"worker {worker}, pid {os.getpid()} on {socket.gethostname()}"
        executor = Executor(plan, worker, transport, link, where=where, batch_size=batch_size)
        stats = executor.run()
        link.flush_results()
        link.send(("done", stats))
        while transport.recv() != _QUIT:  # serve late credits until the driver says quit
            pass
    except Dispel4PyError as exc:
        _send_error(link, exc)
    except BaseException as exc:  # anything else still reaches the driver, as data
        _send_error(link, Dispel4PyError(f"worker {worker} failed: {type(exc).__name__}: {exc}"))
    finally:
        if transport is not None:
            transport.close()
        conn.close()


def _send_error(link: _DriverLink, exc: Dispel4PyError) -> None:
    try:
        link.send(("error", exc))
    except Exception:
        link.send(("error", Dispel4PyError(str(exc))))


def _load_plan(blob: bytes, module_files: list[tuple[str, str]]) -> Plan:
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


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the driver dies, so no worker outlives a killed run."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
