"""A worker's liveness on Redis, kept by a small process that the worker's GIL cannot stop.

A heartbeat *thread* stops beating while a PE holds the GIL in one long C call
(``sum(range(10**9))``, ``sorted`` of a big list, a regex), and on a loaded machine; its
worker's tasks were then taken from it while it ran them. So each worker forks, before it
starts any thread, a heartbeat process that only sleeps and beats:

* every ``ttl_ms / 5`` it renews ``d4py:<run>:alive:<worker>`` (TTL ``ttl_ms``, the
  run's ``--claim-idle-ms``) — unless the worker is stopped (SIGSTOP, Ctrl-Z: state ``T``
  in ``/proc``), so that a frozen worker's tasks are reclaimed. Tasks idle longer than the
  claim time are reclaimed only from workers whose key has expired (``REQUEUE``): a live
  worker's task is never taken, however long one call takes.
* When the worker ends, however it ends (SIGKILL too: the pipe it held closes), the
  process deletes the key, so that its tasks are given back at the next reclaim, and exits.
* For a worker on another host (``watch_driver``), it also checks the driver's liveness
  key; once that is gone it tells the worker (a byte on a pipe, then SIGTERM, whatever
  the worker's inherited signal dispositions) and, if the worker has not left within
  ``GRACE_S`` (a PE stuck in C code), says so on stderr and kills it.

The process names itself ``d4py-heartbeat`` (``/proc/<pid>/comm``), so that a driver that
stops its local workers by signal (a streamed run stopped early) can find the heartbeat
processes they leave for a moment and wait for them (:func:`heartbeats_of`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from typing import Any

from dispel4py.errors import TransportError
from dispel4py.mappings.redis.server import RedisTarget, connect

__all__ = ["Heartbeat", "GRACE_S", "NAME", "heartbeats_of"]

GRACE_S = 5.0  # a worker told that its driver is gone is killed if it is still there after this
_STOPPED = ("T", "t")  # /proc/<pid>/stat states of a stopped or traced process
NAME = "d4py-heartbeat"  # the heartbeat process's /proc/<pid>/comm

# KEYS: the worker's liveness key, the run's info, the driver's liveness key (or info again)
# ARGV: ttl ms, 1 if the worker is stopped. Renews the key while the run exists (never makes
# one for a run that is over); returns whether the driver is there.
_BEAT = """
if ARGV[2] == '0' and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return redis.call('EXISTS', KEYS[3])
"""


class Heartbeat:
    """``start()`` in the worker before any thread; ``stop()`` when the worker leaves."""

    def __init__(
        self,
        target: RedisTarget,
        alive_key: str,
        ttl_ms: int,
        *,
        info_key: str,
        driver_key: str | None = None,
        run_id: str = "",
    ) -> None:
        self.target, self.alive_key, self.ttl_ms = target, alive_key, ttl_ms
        self.info_key, self.driver_key, self.run_id = info_key, driver_key, run_id
        self.pid = 0
        self._stop_w = self._gone_r = -1

    def start(self, client: Any) -> None:
        """The first beat (with the worker's ``client``, before it takes any task), then the process."""
        client.set(self.alive_key, b"1", px=self.ttl_ms)
        stop_r, self._stop_w = os.pipe()
        self._gone_r, gone_w = os.pipe()
        worker = os.getpid()
        pid = os.fork()
        if pid == 0:  # the heartbeat process: never returns
            code = 0
            try:
                os.close(self._stop_w)
                os.close(self._gone_r)
                _name_this_process(NAME)
                code = _Beating(self, worker, stop_r, gone_w).run()
            except BaseException:  # a child must never return into the worker's code
                code = 1
            finally:
                os._exit(code)
        os.close(stop_r)
        os.close(gone_w)
        os.set_blocking(self._gone_r, False)
        self.pid = pid

    def driver_gone(self) -> bool:
        """Whether the heartbeat process found the driver gone."""
        if self._gone_r < 0:
            return False
        try:
            return bool(os.read(self._gone_r, 1))
        except BlockingIOError:
            return False

    def check(self) -> None:
        """Raise if the heartbeat process has died (killed by hand, the OOM killer): this
        worker would look dead to the others, who would take every task it runs."""
        if not self.pid:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid:
            self.pid = 0
            raise TransportError(
                f"the heartbeat process (pid {pid}) of the worker with pid {os.getpid()} ended "
                f"({_how(status)}); without it the worker looks dead to the others, so it stops"
            )

    def stop(self) -> None:
        """End the heartbeat process (it deletes the liveness key) and reap it."""
        if not self.pid:
            return
        os.close(self._stop_w)
        with contextlib.suppress(ChildProcessError, InterruptedError):
            os.waitpid(self.pid, 0)
        os.close(self._gone_r)
        self.pid, self._stop_w, self._gone_r = 0, -1, -1


class _Beating:
    """The loop of the heartbeat process."""

    def __init__(self, beat: Heartbeat, worker: int, stop_r: int, gone_w: int) -> None:
        self.beat, self.worker, self.stop_r, self.gone_w = beat, worker, stop_r, gone_w
        self.every_s = beat.ttl_ms / 5000

    def run(self) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides; it stops us
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        client = connect(
            self.beat.target, socket_timeout=max(2.0, self.every_s), name="dispel4py-heartbeat", lean=True
        )
        try:
            while self._worker_there():
                try:
                    if self._driver_gone(client):
                        self._tell_worker()
                        return 0
                except Exception:  # the server is away: the worker meets it and says so (no log
                    pass  # here: the worker's log handler writes to its driver's pipe)
                if select.select([self.stop_r], [], [], self.every_s)[0]:
                    break
        finally:
            with contextlib.suppress(Exception):  # the worker left: its tasks may be reclaimed now
                client.delete(self.beat.alive_key)
        return 0

    def _worker_there(self) -> bool:
        return os.getppid() == self.worker

    def _driver_gone(self, client: Any) -> bool:
        """Beat (unless the worker is stopped, or the run is over); whether the driver's
        liveness key is gone."""
        stopped = _state(self.worker) in _STOPPED
        keys = [self.beat.alive_key, self.beat.info_key, self.beat.driver_key or self.beat.info_key]
        there = client.eval(_BEAT, 3, *keys, self.beat.ttl_ms, int(stopped))
        return self.beat.driver_key is not None and not there

    def _tell_worker(self) -> None:
        if select.select([self.stop_r], [], [], 0)[0]:  # the worker is leaving anyway (the run ended)
            return
        os.write(self.gone_w, b"g")
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.worker, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            if select.select([self.stop_r], [], [], 0.05)[0] or not self._worker_there():
                return
        sys.stderr.write(
            f"dispel4py worker: error: the driver of run {self.beat.run_id} is gone and worker pid "
            f"{self.worker} did not stop within {GRACE_S:g} s (a PE call that does not return?): killed\n"
        )
        sys.stderr.flush()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.worker, signal.SIGKILL)


def heartbeats_of(pids: list[int]) -> list[int]:
    """Pidfds of the heartbeat processes of the processes ``pids`` (their children named
    :data:`NAME`), to wait for them once those processes are stopped: a worker ended by a
    signal leaves its heartbeat process for the moment it takes to see that and delete the
    liveness key. Empty where ``/proc`` or pidfds are missing."""
    found = []
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
            for child in children:
                try:
                    with open(f"/proc/{child}/comm") as f:
                        if f.read().strip() != NAME:
                            continue
                    found.append(os.pidfd_open(child))
                except (AttributeError, OSError):
                    continue
    return found


def _name_this_process(name: str) -> None:
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _state(pid: int) -> str:
    """The process state letter of ``pid`` (``/proc``; '' where there is none)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat[stat.rfind(b")") + 2 :][:1].decode()
