"""Worker processes on this machine, shared by ``multi`` and ``zmq_multi``.

The driver (this process) starts one process per worker of the plan; each runs THE
executor loop over its instances, with the mapping's transport between workers. Workers
report to the driver over a private pipe (``processes/link.py``): collected outputs, log records,
stats, and errors (as data).

* **Failure ends the run at once.** The driver waits on those pipes *and* on the process
  sentinels, so a user exception, a worker killed by a signal (reported as soon as the
  process is gone, even if something it forked still holds its pipe), or Ctrl-C ends the
  whole run at once. The first error is raised, once, in the driver.
* **No process outlives the run.** Leaving ``execute`` (by return or any exception) stops
  every worker: SIGTERM, a short grace, SIGKILL. A worker also ends on its own when the
  driver dies, even by SIGKILL and under any start method (``processes/lifetime.py``).
* **Signals are the application's.** This module installs no handler in the driver: the
  CLI turns SIGTERM/SIGHUP into an exception for the length of a run (``signals.py``);
  a library user may do the same with :func:`dispel4py.engine.signals.stop_on_signals`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispel4py.engine.plan import Plan
from dispel4py.engine.result import InstanceStats
from dispel4py.engine.signals import stacks_on_sigusr1_here
from dispel4py.engine.tuning import Tuning
from dispel4py.errors import (
    UsageError,
    WorkerDied,
)
from dispel4py.mappings.base import Mapping, ResultCollector
from dispel4py.mappings.processes.capacity import refused_by_os, refused_error, warn_far_above_cores
from dispel4py.mappings.processes.channels import QUIT, Channels, WorkerStart
from dispel4py.mappings.processes.lifetime import (
    death_watch,
    driver_leftovers,
    driver_lifeline,
    socket_path_error,
)
from dispel4py.mappings.processes.link import FdHandle, LinkReader, make_link
from dispel4py.mappings.processes.shm import ShmCodec
from dispel4py.mappings.processes.waiting import Waiter
from dispel4py.mappings.processes.worker_process import (
    emit_log,
    log_levels,
    module_files,
    plan_blob,
    worker_main,
)

__all__ = ["ProcessMapping"]

_log = logging.getLogger(__name__)
_GRACE = 0.25  # seconds a worker has to end on SIGTERM before SIGKILL
_KILL_WAIT = 5.0  # safety net: seconds to reap a worker after SIGKILL
_QUIT_WAIT = 10.0  # safety net: seconds a finished worker has to exit after the quit


class ProcessMapping(Mapping):
    """Placement on N local processes; subclasses choose the transport (``make_channels``)."""

    stops_on_signals = True  # the CLI turns SIGTERM/SIGHUP into an exception during a run
    _num_checked = False  # the warning of a -n far above the cores was considered

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
        cls.add_layout_arguments(parser)
        cls.add_tuning_arguments(parser)
        cls.add_shm_argument(parser)
        cls.add_start_method_argument(parser)

    @staticmethod
    def add_start_method_argument(parser: argparse.ArgumentParser | Any, whose: str = "worker") -> None:
        parser.add_argument(
            "--start-method",
            choices=("fork", "spawn", "forkserver"),
            default=None,
            help=f"how {whose} processes start (default: the platform's)",
        )

    @staticmethod
    def add_shm_argument(parser: argparse.ArgumentParser | Any) -> None:
        parser.add_argument(
            "--shm-bytes",
            type=int,
            default=None,
            help="bytes of large buffers in flight through shared memory at once (default: half "
            "of /dev/shm's free space, at most 2 GiB; 0: none, everything through the channels)",
        )

    def num_workers(self) -> int:
        num = self.options.get("num")
        if num is None:
            return os.cpu_count() or 1
        if num < 1:
            raise UsageError(f"-n/--num must be at least 1 (got {num})")
        if not self._num_checked:  # said once per run, however often the plan asks
            self._num_checked = True
            warn_far_above_cores(int(num))
        return int(num)

    @abstractmethod
    def make_channels(self, ctx: Any, workers: int) -> Channels: ...

    def execute(self, plan: Plan, collector: ResultCollector) -> list[InstanceStats]:
        import multiprocess

        tuning = self.live_tuning(Tuning.from_options(self.options))  # checked before anything is created
        ctx = multiprocess.get_context(self.options.get("start_method"))
        with (
            contextlib.closing(self.shared_memory(ctx)) as codec,
            contextlib.closing(self.make_channels(ctx, plan.num_workers)) as channels,
            _Pool(ctx, plan, channels, tuning) as pool,
        ):
            channels.codec = codec
            pool.start()
            return pool.collect(collector, on_report=self.board.on_report if self.board else None)

    def shared_memory(self, ctx: Any) -> ShmCodec:
        """The run's arena for large buffers (``shm.py``); closed after the workers are gone."""
        return ShmCodec.create(ctx, self.shm_bytes())

    def shm_bytes(self) -> int | None:
        """``--shm-bytes`` (None: the default), checked."""
        budget = self.options.get("shm_bytes")
        if budget is not None and budget < 0:
            raise UsageError(f"--shm-bytes must be 0 or more (got {budget})")
        return budget

    def live_tuning(self, tuning: Tuning) -> Tuning:
        """``tuning`` with live counters on when a board watches the run (``live.py``)."""
        return tuning if self.board is None else dataclasses.replace(tuning, live_s=self.board.every)


@dataclass
class _Worker:
    """The driver's view of one worker process."""

    process: Any
    link: LinkReader
    ended: int  # readable once the process has ended (see death_watch)
    pidfd: FdHandle | None  # ours to close, when ``ended`` is a pidfd


class _Pool:
    """The driver's side: starts the workers, listens to them, stops them (``close``)."""

    def __init__(self, ctx: Any, plan: Plan, channels: Channels, tuning: Tuning) -> None:
        self.ctx, self.plan, self.channels, self.tuning = ctx, plan, channels, tuning
        self.workers: list[_Worker] = []
        self.lifeline: FdHandle | None = None
        self.stats: list[InstanceStats] = []
        self.on_report: Callable[[int, str, Any], bool] | None = None
        self.done: set[int] = set()

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self, count: int | None = None) -> None:
        """Start workers 0 .. ``count`` - 1 (default: every worker of the plan)."""
        blob = plan_blob(self.plan) if self.ctx.get_start_method() != "fork" else None
        self.lifeline = driver_lifeline()
        start = WorkerStart(
            driver_pid=os.getpid(),
            lifeline=self.lifeline,
            leftovers=driver_leftovers(self.ctx) + self.channels.leftover_paths(),
            module_files=module_files(self.plan),
            levels=log_levels(),
            tuning=self.tuning,
            stacks_on_sigusr1=stacks_on_sigusr1_here(),
        )
        total = self.plan.num_workers if count is None else count
        for worker in range(total):
            reader, writer = make_link()
            try:
                process = self.ctx.Process(
                    target=worker_main,
                    args=(self.plan if blob is None else blob, start, worker, writer, self.channels),
                    name=f"dispel4py-worker-{worker}",
                    daemon=True,
                )
                process.start()
            except BaseException as exc:
                reader.close()
                if refused_by_os(exc):  # the workers started so far are stopped by close()
                    raise refused_error(f"worker {worker} of {total}", total, exc) from exc
                usage = socket_path_error(exc)
                if usage is not None:
                    raise usage from exc
                raise
            finally:
                writer.close()  # the worker's copy is the only one: EOF when it is gone
            ended, pidfd = death_watch(process, self.ctx.get_start_method())
            self.workers.append(_Worker(process, reader, ended, pidfd))

    def collect(
        self,
        collector: ResultCollector,
        *,
        on_report: Callable[[int, str, Any], bool] | None = None,
        tick: Callable[[], None] | None = None,
        every: float | None = None,
    ) -> list[InstanceStats]:
        """Relay what workers say until all are done; the first error or death is raised.

        A death is noticed on the process itself, not on a pipe, which a process forked by
        a PE may keep open: what the worker said before dying is read at once, then the
        death is reported, unless the worker had finished. Messages of other kinds go to
        ``on_report(worker, kind, body)``; ``tick()`` runs about every ``every`` seconds.
        """
        wait = Waiter().wait
        self.on_report = on_report
        listening = {w.link: i for i, w in enumerate(self.workers)}
        watching = {w.ended: i for i, w in enumerate(self.workers)}
        next_tick = time.monotonic() + (every or 0)
        stopped = [] if collector.stopped_fd is None else [collector.stopped_fd]
        while len(self.done) < len(self.workers):
            timeout = None if tick is None else max(0.0, next_tick - time.monotonic())
            ready_list = wait([*listening, *watching, *stopped], timeout)
            if stopped and stopped[0] in ready_list:
                collector.check_stopped()  # the consumer of a streamed run has gone
                stopped.clear()  # it raised, unless the run goes on without a consumer
            if tick is not None and time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + (every or 0)
            for ready in ready_list:
                if ready in watching:
                    worker = watching.pop(ready)
                    link = self.workers[worker].link
                    listening.pop(link, None)
                    self._relay(worker, link.read(drain=True), collector)
                    if worker not in self.done:
                        raise self._died(worker)
                elif ready in listening:
                    self._relay(listening[ready], ready.read(), collector)
                    if ready.at_eof:
                        del listening[ready]
        self._quit()
        return self.stats

    def _relay(self, worker: int, messages: list[Any], collector: ResultCollector) -> None:
        for kind, body in messages:
            if kind == "results":
                for pe_id, output, items in body:
                    collector.extend(pe_id, output, items)
            elif kind == "log":
                emit_log(*body)
            elif kind == "done":
                self.stats.extend(body)
                self.done.add(worker)
            elif kind == "error":
                raise body
            elif self.on_report is None or not self.on_report(worker, kind, body):
                raise RuntimeError(f"dispel4py internal error: unexpected report {kind!r} from {worker}")

    def _quit(self) -> None:
        """Every worker is done: tell them to quit and let them exit on their own."""
        for worker in range(len(self.workers)):
            self.channels.send_from_driver(worker, QUIT)
        late = _wait_all([w.ended for w in self.workers], _QUIT_WAIT)
        if late:
            _log.warning("%d worker(s) still running %gs after the run; stopping them", len(late), _QUIT_WAIT)

    def _died(self, worker: int) -> WorkerDied:
        code = self.workers[worker].process.exitcode  # it has ended: this reaps it
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        hosted = ", ".join(f"{self.plan.pe_of(i)} (instance {i})" for i in self.plan.hosted(worker))
        doing = self.channels.doing(worker)
        text = f"worker {worker} died ({how})"
        text += f" {doing}" if doing else ""
        text += f" hosting {hosted}" if hosted else ""
        return WorkerDied(text)

    def close(self) -> None:
        """Stop every worker still running, release the pipes (idempotent).

        SIGTERM, at most ``_GRACE`` for the PE's own handlers, then SIGKILL: a worker that
        ignores SIGTERM cannot hold the driver up.
        """
        running = [w for w in self.workers if w.process.exitcode is None]
        for w in running:
            w.process.terminate()
        stubborn = set(_wait_all([w.ended for w in running], _GRACE))
        for w in running:
            if w.ended in stubborn:
                w.process.kill()
        if _wait_all([w.ended for w in running if w.ended in stubborn], _KILL_WAIT):
            _log.warning("a worker process did not end %gs after SIGKILL", _KILL_WAIT)
        for w in self.workers:
            _ = w.process.exitcode  # reaps the process (a zombie otherwise)
            w.link.close()
            if w.pidfd is not None:
                w.pidfd.close()
        if self.lifeline is not None:
            self.lifeline.close()
        self.workers, self.lifeline = [], None


def _wait_all(fds: list[int], timeout: float) -> list[int]:
    """Wait until every fd is readable, for at most ``timeout`` s; the ones that are not."""
    if not fds:  # a Redis driver without local workers: nothing to import or wait for
        return []
    from multiprocess.connection import wait

    deadline = time.monotonic() + timeout
    pending = list(fds)
    while pending and (left := deadline - time.monotonic()) > 0:
        ready = wait(pending, left)
        pending = [fd for fd in pending if fd not in ready]
    return pending
