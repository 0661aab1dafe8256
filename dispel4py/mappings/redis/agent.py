"""The host agent (``dispel4py worker -n N``): one process that runs up to N worker processes
on its host for Redis runs, and with ``--serve`` stays standing, run after run.

* **Joining.** With ``--serve`` the agent joins every run signed with its key as it starts
  (or those whose id matches ``--runs PATTERN``, a shell-style pattern): drivers publish
  each new run's id (``fleet.py``); the agent checks the run's signed metadata, then forks
  its processes, each a joined worker of that run (``join.py``, the same code as
  ``dispel4py worker`` without ``-n``). It serves several runs at once: a run gets the
  agent's free processes, at least one. Without ``--serve`` it joins one run (``--run``, or
  the only one in progress, waiting up to ``--wait`` s) and leaves when its processes do.
* **Idle.** Between runs the agent waits in one blocking ``select`` on the announcement
  connection, its processes' pidfds and its signal pipe; it wakes every
  ``REFRESH_S`` only to refresh its record. It never runs PE code, so nothing holds its
  GIL: its record (``agents.py``, for ``dispel4py status`` and the drivers) is refreshed
  on time whatever its processes do, and expires by itself if the agent is SIGKILLed.
* **Liveness** of each process in a run is its own heartbeat process (``heartbeat.py``);
  a process whose agent dies gets SIGTERM (``PR_SET_PDEATHSIG``) and leaves the run cleanly.
* **Stopping.** SIGTERM, SIGINT (Ctrl-C) or SIGHUP drain the agent: it joins nothing more,
  tells its processes to leave (what they run goes back to the queue), waits for them,
  removes its record and exits 0. A second signal kills its processes at once (exit 128 +
  the signal's number).
"""

from __future__ import annotations

import contextlib
import ctypes
import fnmatch
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispel4py.dynamic.signing import Signer
from dispel4py.engine.signals import Terminated, stop_on_signals
from dispel4py.errors import Dispel4PyError, UsageError
from dispel4py.mappings.redis.agents import AgentRecord, new_agent_id, publish_agent, remove_agent
from dispel4py.mappings.redis.fleet import RUNS_CHANNEL, WorkerOffer
from dispel4py.mappings.redis.join import find_runs, join_run, preload_worker_modules
from dispel4py.mappings.redis.keys import lost_error
from dispel4py.mappings.redis.server import RedisTarget, check_server, connect

__all__ = ["Agent", "AgentOptions", "REFRESH_S"]

_log = logging.getLogger("dispel4py.worker")
REFRESH_S = 2.0  # the record lasts AGENT_TTL_MS (10 s); refreshed at least every 2.5 s
_RESCAN_EVERY = 5  # refreshes between two scans for runs (announcements missed while away)
_PR_SET_PDEATHSIG = 1
_POLL_S = 0.5  # without --serve, while waiting for the run to start


@dataclass
class AgentOptions:
    processes: int
    serve: bool
    pattern: str | None
    tags: frozenset[str]
    minimum: int
    maximum: int
    run: str | None
    wait_s: float
    join: Mapping[str, Any]  # the options every process joins with (join.join_run)
    signals: tuple[int, ...]  # the signals that stop the agent


@dataclass
class _Child:
    pid: int
    run: str
    pidfd: int
    status: int  # read end of the pipe on which it says "parked" (p) / "woken" (w)
    parked: bool = False


@dataclass
class _State:
    children: dict[int, _Child] = field(default_factory=dict)
    joined: set[tuple[str, float]] = field(default_factory=set)  # (run id, started): never twice
    codes: list[int] = field(default_factory=list)  # exit codes of the processes
    signals: list[int] = field(default_factory=list)


class Agent:
    def __init__(self, options: AgentOptions, target: RedisTarget, signer: Signer) -> None:
        self.options, self.target, self.signer = options, target, signer
        self.record = AgentRecord(
            agent_id=new_agent_id(),
            host=socket.gethostname(),
            pid=os.getpid(),
            tags=sorted(options.tags),
            min=options.minimum,
            max=options.maximum,
            started=time.time(),
        )
        self.offer = WorkerOffer(
            agent=self.record.agent_id,
            host=self.record.host,
            tags=options.tags,
            minimum=options.minimum,
            maximum=options.maximum,
        )
        self.state = _State()
        self.client: Any = None
        self.pubsub: Any = None
        self.published = 0.0  # when the record was last written (monotonic)

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped (``--serve``) or until the one run is over; the exit code."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = {s: signal.signal(s, self._on_signal) for s in self.options.signals}
        old_fd = signal.set_wakeup_fd(wake_w)
        try:
            check_server(self.target)  # once here: the agent's processes do not ask again
            preload_worker_modules()
            self.client = connect(self.target, socket_timeout=10, name="dispel4py-agent")
            return self._start_and_loop(wake_r)
        except Exception as exc:  # the server went away: say so (exit 1); a supervisor restarts us
            error = lost_error(self.target, exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            signal.set_wakeup_fd(old_fd)
            for signum, action in previous.items():
                signal.signal(signum, action)
            self._leave(wake_r, wake_w)

    def _start_and_loop(self, wake_r: int) -> int:
        if self.options.serve:
            self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            self.pubsub.subscribe(RUNS_CHANNEL)
            self._scan()
            if not self.state.children:
                _log.debug("agent %s waits for runs signed with its key", self.record.agent_id)
        elif not self._join_one(wake_r):
            _log.warning("dispel4py worker: %s before joining a run", _stopped(self.state.signals[0]))
            return 0
        return self._loop(wake_r)

    def _loop(self, wake_r: int) -> int:
        beats = 0
        next_beat = 0.0
        draining = False
        while True:
            if self.state.signals:
                if draining:
                    return self._kill_all(self.state.signals[-1])
                draining = True
                self._drain(self.state.signals[0])
                self.state.signals.clear()
            if not self.state.children and (draining or not self.options.serve):
                return 0 if draining else next((c for c in self.state.codes if c), 0)
            if time.monotonic() >= next_beat:
                self._publish()
                beats += 1
                if self.options.serve and not draining and beats % _RESCAN_EVERY == 0:
                    self._scan()
                next_beat = time.monotonic() + REFRESH_S
            self._wait(wake_r, max(0.0, next_beat - time.monotonic()), draining)

    def _wait(self, wake_r: int, timeout: float, draining: bool) -> None:
        """Block until a run is announced, a process ends or parks, a signal, or ``timeout``."""
        fds = [wake_r, *(c.pidfd for c in self.state.children.values())]
        fds += [c.status for c in self.state.children.values()]
        sock = self._announcements()
        if sock is not None and not draining:
            fds.append(sock)
        try:
            ready = select.select(fds, [], [], timeout)[0]
        except InterruptedError:
            return
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 64)
        for child in list(self.state.children.values()):
            if child.status in ready:
                self._read_status(child)
            if child.pidfd in ready:
                self._reap(child)
        if sock is not None and not draining and (sock in ready or self._buffered()):
            self._announced()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.state.signals.append(signum)

    # -- runs --------------------------------------------------------------------------------
    def _announcements(self) -> int | None:
        conn = getattr(self.pubsub, "connection", None)
        sock = getattr(conn, "_sock", None)
        return sock.fileno() if sock is not None else None

    def _buffered(self) -> bool:
        conn = getattr(self.pubsub, "connection", None)
        try:
            return bool(conn is not None and conn.can_read(timeout=0))
        except Exception:
            return False

    def _announced(self) -> None:
        """Join the runs just announced (a message is a hint: the run's signature decides)."""
        while True:
            message = self.pubsub.get_message(timeout=0)
            if message is None:
                return
            data = message.get("data")
            run_id = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
            try:
                runs = find_runs(self.client, self.signer, run_id)
            except Dispel4PyError as exc:  # another key's run, or a stranger's message
                _log.debug("agent: not joining %s: %s", run_id, exc)
                continue
            self._join(runs)

    def _scan(self) -> None:
        self._join(find_runs(self.client, self.signer))

    def _join(self, runs: Mapping[str, tuple[dict[str, Any], bytes | None]]) -> None:
        for run_id, (meta, blob) in sorted(runs.items()):
            ident = (run_id, float(meta.get("started", 0.0)))
            if blob is None or ident in self.state.joined:
                continue
            if self.options.pattern and not fnmatch.fnmatchcase(run_id, self.options.pattern):
                continue
            self.state.joined.add(ident)
            self._start(run_id, (meta, blob))

    def _join_one(self, wake_r: int) -> bool:
        """Without ``--serve``: the run to join (``--run``, or the only one signed with the
        key), waiting up to ``--wait`` s for it to start; False if a signal came first."""
        deadline = time.monotonic() + self.options.wait_s
        while not self.state.signals:
            if time.monotonic() >= self.published + REFRESH_S:
                self._publish()
            runs = {k: v for k, v in find_runs(self.client, self.signer, self.options.run).items() if v[1]}
            if len(runs) > 1:
                raise UsageError(
                    f"several runs are in progress: {', '.join(sorted(runs))}; choose one with --run"
                )
            if runs:
                run_id, (meta, blob) = next(iter(runs.items()))
                assert blob is not None  # runs without a plan were left out above
                self._start(run_id, (meta, blob))
                return True
            if time.monotonic() >= deadline:
                which = (
                    f"run {self.options.run} is not" if self.options.run else "no run signed with this key is"
                )
                raise UsageError(f"{which} in progress on this server (waited {self.options.wait_s:g} s)")
            if select.select([wake_r], [], [], _POLL_S)[0]:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 64)
        return False

    def _start(self, run_id: str, found: tuple[dict[str, Any], bytes]) -> None:
        """Fork processes for ``run_id``, giving them its metadata and plan (checked here)."""
        live = len(self.state.children)
        count = min(self.options.processes, max(1, self.options.processes - live))
        _log.info("agent %s: %d process(es) join run %s", self.record.agent_id, count, run_id)
        for _ in range(count):
            self._fork(run_id, found)
        self._publish()

    def _fork(self, run_id: str, found: tuple[dict[str, Any], bytes]) -> None:
        status_r, status_w = os.pipe()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker process: never returns
            code = 1
            try:
                os.close(status_r)
                for other in self.state.children.values():  # the agent's, not this process's
                    os.close(other.pidfd)
                    os.close(other.status)
                code = _child(self.options, self.offer, run_id, status_w, found)
            finally:
                os._exit(code)
        os.close(status_w)
        self.state.children[pid] = _Child(pid, run_id, os.pidfd_open(pid), status_r)

    def _read_status(self, child: _Child) -> None:
        try:
            data = os.read(child.status, 64)
        except OSError:
            data = b""
        if data:
            child.parked = data[-1:] == b"p"
            self._publish()

    def _reap(self, child: _Child) -> None:
        _, status = os.waitpid(child.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self.state.codes.append(code if code >= 0 else 128 - code)
        for fd in (child.pidfd, child.status):
            os.close(fd)
        del self.state.children[child.pid]
        if not any(c.run == child.run for c in self.state.children.values()):
            self.record.served += 1
            _log.info("agent %s: run %s is over for this host", self.record.agent_id, child.run)
        self._publish()

    # -- the registry and stopping -------------------------------------------------------------
    def _publish(self) -> None:
        children = list(self.state.children.values())
        self.record.parked = sum(c.parked for c in children)
        self.record.active = len(children) - self.record.parked
        self.record.runs = sorted({c.run for c in children})
        self.published = time.monotonic()
        try:
            publish_agent(self.client, self.signer, self.record)
        except Exception as exc:  # the server is away: the processes meet it and say so
            _log.debug("agent: cannot refresh its record: %s", exc)

    def _drain(self, signum: int) -> None:
        name = signal.Signals(signum).name
        _log.info(
            "agent %s: %s: draining %d process(es) (their tasks go back to the queue)",
            self.record.agent_id,
            name,
            len(self.state.children),
        )
        for pid in self.state.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _kill_all(self, signum: int) -> int:
        _log.warning("agent %s: second signal: stopping at once", self.record.agent_id)
        for child in list(self.state.children.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            self._reap(child)
        return 128 + signum

    def _leave(self, wake_r: int, wake_w: int) -> None:
        with contextlib.suppress(Exception):
            remove_agent(self.client, self.record)
        with contextlib.suppress(Exception):
            if self.pubsub is not None:
                self.pubsub.close()
        with contextlib.suppress(Exception):
            self.client.close()
        for fd in (wake_r, wake_w):
            os.close(fd)


def _child(
    options: AgentOptions, offer: WorkerOffer, run_id: str, status_w: int, found: tuple[dict[str, Any], bytes]
) -> int:
    """A worker process of the agent: join ``run_id`` and serve it (``join.join_run``)."""
    signal.set_wakeup_fd(-1)
    for signum in options.signals:
        signal.signal(signum, signal.SIG_DFL)
    _die_with_parent()

    def on_park(parked: bool) -> None:
        with contextlib.suppress(OSError):
            os.write(status_w, b"p" if parked else b"w")

    try:
        with stop_on_signals(options.signals):
            joining = {**options.join, "run": run_id, "wait": 0.0, "server_checked": True}
            return join_run(joining, offer, on_park, found)
    except Terminated as exc:
        _log.info("a process of the agent left before joining run %s (%s)", run_id, exc)
        return 0
    except Dispel4PyError as exc:
        sys.stderr.write(f"dispel4py worker: error: {exc}\n")
        return exc.exit_code


def _die_with_parent() -> None:
    """SIGTERM when the agent dies (SIGKILL, OOM): the process leaves its run cleanly."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _stopped(signum: int) -> str:
    return str(Terminated(signum))
