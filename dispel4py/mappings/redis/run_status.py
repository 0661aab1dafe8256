"""What a run in progress shows of itself to ``dispel4py status``: a small signed snapshot.

The driver alone knows a run's progress (the coordinator counts every task reported done
and every task still in flight), so it publishes a snapshot of it, ``d4py:<run>:status``,
about once a second from its loop (``RedisRun.keep_alive``). The key expires
``STATUS_TTL_MS`` after the last refresh, so a driver that is killed leaves nothing behind
that looks alive for long; the run's end deletes it with the run's other keys.

The snapshot is JSON signed with the run key under a scope of its own and bound to its key
name (as the agents' records, ``agents.py``): ``status`` never unpickles what the server
holds, and a record forged, signed with another key or copied to another run's key is
counted and never shown. It is signed without the run's nonce on purpose: a reader with the
key file can check it without reading the run's (pickled) metadata.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dispel4py.dynamic.signing import MAC_SIZE, Forged, Signer

__all__ = [
    "STATUS_TTL_MS",
    "PEStatus",
    "RunStatus",
    "StatusPublisher",
    "publish_status",
    "read_runs",
    "status_key",
]

_log = logging.getLogger("dispel4py.engine")

STATUS_TTL_MS = 5000  # as the driver's liveness key: gone this long after the driver is
_SCOPE = b"run-status"
_PATTERN = "d4py:*:status"
_SCAN_COUNT = 1000
_RATE_WINDOW_S = 5.0  # items per second over about this many seconds


def status_key(run_id: str) -> str:
    return f"d4py:{run_id}:status"


@dataclass
class PEStatus:
    """One PE of a run: ``items`` and ``tasks`` done so far, ``items_per_s`` over the last
    few seconds, ``ended`` once its stream has ended, ``streams`` its task queues. ``backlog``
    (its tasks queued or running) is read by :func:`read_runs` from those streams' lengths,
    not from the driver: the driver learns of a task only when the task that made it is done
    (a source's single task makes them all), the streams hold them from the moment they exist."""

    pe: str
    items: int = 0
    tasks: int = 0
    items_per_s: float = 0.0
    ended: bool = False
    streams: list[str] = field(default_factory=list)
    backlog: int = 0


@dataclass
class RunStatus:
    """A run as its driver last described it; ``updated`` is the driver's Unix time."""

    run: str
    mapping: str
    driver: str
    elapsed_s: float
    local_workers: int
    joined_workers: int
    pes: list[PEStatus] = field(default_factory=list)
    updated: float = 0.0

    @property
    def key(self) -> str:
        return status_key(self.run)

    @property
    def backlog(self) -> int:
        return sum(p.backlog for p in self.pes)


def publish_status(pipe: Any, signer: Signer, status: RunStatus, ttl_ms: int = STATUS_TTL_MS) -> None:
    """Write (or refresh) ``status`` under its key, signed, expiring after ``ttl_ms``
    (``pipe``: a client or a pipeline, so the write can ride on the driver's round trip)."""
    status.updated = time.time()
    data = json.dumps(asdict(status), sort_keys=True).encode()
    pipe.set(status.key, signer.mac(_SCOPE, data, status.key.encode()) + data, px=ttl_ms)


def read_runs(client: Any, signer: Signer) -> tuple[list[RunStatus], int]:
    """Every run whose snapshot is signed with ``signer``'s key, sorted by id, with each PE's
    backlog read from its streams, and how many snapshots were not (forged, or another key's)."""
    keys = sorted(client.scan_iter(match=_PATTERN, count=_SCAN_COUNT))
    values = client.mget(keys) if keys else []
    runs: list[RunStatus] = []
    forged = 0
    for key, value in zip(keys, values):
        status = _opened(signer, key.decode() if isinstance(key, bytes) else key, value)
        if status is None:
            forged += value is not None  # None: the run ended between the scan and the read
        else:
            runs.append(status)
    runs.sort(key=lambda r: r.run)
    _read_backlogs(client, runs)
    return runs, forged


def _read_backlogs(client: Any, runs: list[RunStatus]) -> None:
    """``XLEN`` of every PE's queues, one round trip (a task leaves its stream once done)."""
    pes = [
        (pe, [s for s in pe.streams if s.startswith(f"d4py:{run.run}:q:")]) for run in runs for pe in run.pes
    ]
    pipe = client.pipeline(transaction=False)
    for _, streams in pes:
        for stream in streams:
            pipe.xlen(stream)
    lengths = iter(pipe.execute() if any(streams for _, streams in pes) else [])
    for pe, streams in pes:
        pe.backlog = sum(int(next(lengths)) for _ in streams)


def _opened(signer: Signer, key: str, value: bytes | None) -> RunStatus | None:
    if value is None or len(value) <= MAC_SIZE:
        return None
    mac, data = value[:MAC_SIZE], value[MAC_SIZE:]
    try:
        signer.check(_SCOPE, mac, data, key.encode())
        fields = json.loads(data)
        pes = [PEStatus(**pe) for pe in fields.pop("pes")]
        status = RunStatus(**fields, pes=pes)
    except (Forged, ValueError, TypeError, KeyError, AttributeError):  # another key's, or junk
        return None
    return status if status.key == key else None


class StatusPublisher:
    """The driver's side: counts the tasks reported done per PE (:meth:`on_report`, chained
    before the coordinator's) and builds the snapshot from the coordinator's counters.

    Called from the driver's loop only (reports and ``keep_alive`` alike), so it needs no lock."""

    def __init__(
        self,
        signer: Signer,
        names: Any,
        mapping: str,
        coordinator: Any,
        workers: Callable[[], tuple[int, int]],
    ) -> None:
        self.signer, self.run_id, self.mapping = signer, names.run_id, mapping
        self.coordinator, self.workers = coordinator, workers
        self.streams: dict[str, list[str]] = {pe: [] for pe in coordinator.plan.order}
        for iid, stream in enumerate(names.instance_streams):
            own = self.streams[coordinator.plan.pe_of(iid)]
            if stream not in own:  # a shared PE's instances have one queue
                own.append(stream)
        self.tasks = dict.fromkeys(coordinator.plan.order, 0)
        self.broken = False
        self.started = time.monotonic()
        self.driver = f"{socket.gethostname()} pid {os.getpid()}"
        self.history: dict[str, deque[tuple[float, int]]] = {
            pe: deque([(self.started, 0)]) for pe in coordinator.plan.order
        }

    def on_report(self, worker: int, kind: str, body: Any) -> bool:
        """Count a ``task`` report; never consumes it (False: the coordinator applies it)."""
        if kind == "task" and body[1] in self.tasks:
            self.tasks[body[1]] += 1
        return False

    def snapshot(self) -> RunStatus:
        now = time.monotonic()
        coordinator = self.coordinator
        pes = []
        for pe in coordinator.plan.order:
            items = int(coordinator.items.get(pe, 0))
            pes.append(
                PEStatus(
                    pe=pe,
                    items=items,
                    tasks=self.tasks[pe],
                    items_per_s=round(self._rate(pe, now, items), 2),
                    ended=pe in coordinator.ended,
                    streams=self.streams[pe],
                )
            )
        local, joined = self.workers()
        return RunStatus(
            run=self.run_id,
            mapping=self.mapping,
            driver=self.driver,
            elapsed_s=round(now - self.started, 1),
            local_workers=local,
            joined_workers=joined,
            pes=pes,
        )

    def _rate(self, pe: str, now: float, items: int) -> float:
        history = self.history[pe]
        history.append((now, items))
        while len(history) > 2 and now - history[1][0] >= _RATE_WINDOW_S:
            history.popleft()
        then, then_items = history[0]
        return (items - then_items) / (now - then) if now > then else 0.0

    def publish(self, pipe: Any) -> None:
        """The hook ``RedisRun.keep_alive`` calls with its pipeline, once a second. What
        only shows the run must never end it: a snapshot that cannot be made is said once,
        and the run goes on without one."""
        if self.broken:
            return
        try:
            status = self.snapshot()
        except Exception as exc:
            self.broken = True
            _log.warning("run %s: no status for dispel4py status from now on: %r", self.run_id, exc)
            return
        publish_status(pipe, self.signer, status)
