"""Live counters of a run: sampled in each worker, gathered in the driver.

Off unless asked for (the CLI's progress display or ``-v`` progress lines set
``Mapping.board``): a normal run starts no thread and pays nothing.

* **In a worker** a :class:`Sampler` thread wakes every ``every`` seconds (0.5 by default),
  reads the engine's own counters through ``rows()`` — items in, items out, busy seconds
  including the call running now, items queued — and hands one small message to
  ``send``: the worker's pipe to the driver (process mappings, ``("stats-live", ...)``), a
  second communicator to rank 0 (``mpi``), or the board itself (``simple``). The engine's
  hot path is untouched: it keeps counting as it always does, and the thread only reads.
  Reads race with the engine's updates; the board keeps each counter's largest value, and
  the final stats of the run replace every live value.
* **In the driver** a :class:`LiveBoard` keeps the latest row per (worker, instance) and,
  when asked (``progress()``, any thread), adds them up per PE with a rate over the last
  seconds. The display (``progress.py``) and ``-v`` progress lines read it; so can a
  library user (``Mapping.board``).

A row is ``(instance id, items in, items out, busy seconds, queued items)``; on dynamic
mappings the driver adds the tasks queued per PE (``queued_source``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispel4py.engine.plan import Plan
    from dispel4py.engine.result import InstanceStats

__all__ = [
    "LIVE_KIND",
    "DEFAULT_EVERY_S",
    "Row",
    "Sampler",
    "sampling",
    "LiveBoard",
    "Progress",
    "PEProgress",
]

_log = logging.getLogger("dispel4py.engine")

LIVE_KIND = "stats-live"  # the report kind on the workers' pipes
DEFAULT_EVERY_S = 0.5
_RATE_WINDOW_S = 3.0  # the rate is measured over about this many seconds

Row = tuple[int, int, int, float, int]  # instance, items in, items out, busy s, queued


class Sampler:
    """A daemon thread sending ``rows()`` every ``every`` s, and once more when closed."""

    def __init__(
        self, rows: Callable[[], list[Row]], send: Callable[[list[Row]], None], every: float
    ) -> None:
        self.rows, self.send, self.every = rows, send, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dispel4py-live", daemon=True)
        self._lock = threading.Lock()  # one send at a time: the last one comes from close()

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._send_once()

    def _send_once(self) -> None:
        with self._lock:
            try:
                rows = self.rows()
            except RuntimeError as exc:  # a dict resized while read: the next tick reads it
                _log.debug("live counters skipped a tick: %s", exc)
                return
            self.send(rows)

    def close(self, final: bool = True) -> None:
        """Stop the thread; send the counters once more (``final``) so that the driver sees
        them complete before the worker reports done."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if final:
            self._send_once()


@contextlib.contextmanager
def sampling(
    rows: Callable[[], list[Row]], send: Callable[[list[Row]], None] | None, every: float
) -> Iterator[None]:
    """Sample while the body runs (nothing at all when ``send`` is None or ``every`` <= 0).

    The final sample is sent only when the body ends normally: after a failure the driver
    has better things to read than counters."""
    if send is None or every <= 0:
        yield
        return
    sampler = Sampler(rows, send, every).start()
    try:
        yield
    except BaseException:
        sampler.close(final=False)
        raise
    sampler.close()


@dataclass
class PEProgress:
    """One PE's row of the display."""

    pe: str
    instances: int
    items_in: int
    items_out: int
    rate: float  # items in per second, over the last few seconds
    queued: int  # items waiting in inboxes (tasks waiting, on dynamic mappings)
    busy: float  # share of the last few seconds its instances ran PE code (0..1 per instance)
    done: bool = False


@dataclass
class Progress:
    """What the display shows at one moment."""

    elapsed_s: float
    mapping: str
    workers: int
    pes: list[PEProgress] = field(default_factory=list)
    queued_unit: str = "items"
    finished: bool = False


class LiveBoard:
    """The driver's view of the live counters (thread-safe)."""

    def __init__(self, every: float = DEFAULT_EVERY_S) -> None:
        self.every = every
        self.queued_source: Callable[[], dict[str, int]] | None = None  # dynamic: tasks per PE
        self._lock = threading.Lock()
        self._rows: dict[tuple[int, int], list[Any]] = {}
        self._history: dict[str, deque[tuple[float, int, float]]] = {}
        self._order: list[str] = []
        self._instances: dict[str, list[int]] = {}
        self._shared: set[str] = set()
        self._pe_of: list[str] = []
        self._copies: dict[int, int] = {}  # once finished: workers that ran each instance
        self._start = time.monotonic()
        self._final: float | None = None
        self.mapping, self.workers = "", 0

    # -- fed by the mapping ------------------------------------------------------------------
    def start(self, plan: Plan, mapping: str) -> None:
        """The run's plan: PEs, instances, workers; the clock starts now."""
        with self._lock:
            self.mapping, self.workers = mapping, plan.num_workers
            self._order = list(plan.order)
            self._instances = {pe: list(iids) for pe, iids in plan.instances.items()}
            self._pe_of = list(plan.placement.pe_of)
            self._shared = {plan.pe_of(i) for i, w in enumerate(plan.placement.worker_of) if w < 0}
            self._rows.clear()
            self._copies.clear()
            self._start, self._final = time.monotonic(), None
            # every PE starts at nothing done: the first reading's rate and busy share are
            # then measured since the start, not from a window of zero length
            self._history = {pe: deque([(self._start, 0, 0.0)]) for pe in self._order}

    def update(self, worker: int, rows: list[Row]) -> None:
        """The latest counters of ``worker``'s instances (each counter only grows)."""
        with self._lock:
            for iid, items_in, items_out, busy, queued in rows:
                old = self._rows.get((worker, iid))
                if old is None:
                    self._rows[(worker, iid)] = [items_in, items_out, busy, queued]
                else:
                    old[0], old[1], old[2] = max(old[0], items_in), max(old[1], items_out), max(old[2], busy)
                    old[3] = queued

    def on_report(self, worker: int, kind: str, body: Any) -> bool:
        """A ``_Pool.collect`` report handler: True when ``kind`` was a live sample."""
        if kind != LIVE_KIND:
            return False
        self.update(*body)
        return True

    def finish(self, stats: list[InstanceStats]) -> None:
        """The run's final stats replace the live counters; the clock stops."""
        with self._lock:
            self._rows = {(s.worker, s.instance): [s.calls, s.items_out, s.busy_s, 0] for s in stats}
            self._copies = {s.instance: s.copies for s in stats}
            self._final = time.monotonic()

    # -- read by the display -------------------------------------------------------------------
    def progress(self) -> Progress:
        queued_extra = self._queued_extra()
        with self._lock:
            now = self._final if self._final is not None else time.monotonic()
            elapsed = now - self._start
            totals: dict[str, list[Any]] = {pe: [0, 0, 0.0, 0, set()] for pe in self._order}
            for (worker, iid), (items_in, items_out, busy, queued) in self._rows.items():
                pe = self._pe_of[iid] if iid < len(self._pe_of) else None
                if pe is None or pe not in totals:
                    continue
                row = totals[pe]
                row[0] += items_in
                row[1] += items_out
                row[2] += busy
                row[3] += queued
                row[4].add((worker, iid))
            pes = [self._pe_row(pe, totals[pe], now, queued_extra) for pe in self._order]
            return Progress(
                elapsed_s=elapsed,
                mapping=self.mapping,
                workers=self.workers,
                pes=pes,
                queued_unit="tasks" if self._shared or queued_extra else "items",
                finished=self._final is not None,
            )

    def _queued_extra(self) -> dict[str, int]:
        if self.queued_source is None:
            return {}
        try:
            return dict(self.queued_source())
        except RuntimeError:  # read while the coordinator changed it: skip this once
            return {}

    def _count(self, pe: str, seen: set[tuple[int, int]]) -> int:
        """The PE's instances; for a shared PE of a dynamic mapping, the workers that ran a
        copy (so far; once finished, as the final stats count them)."""
        iids = self._instances.get(pe, ())
        if pe not in self._shared:
            return len(iids)
        if self._final is not None:
            return sum(self._copies.get(i, 0) for i in iids)
        return len({worker for worker, _ in seen})

    def _pe_row(self, pe: str, row: list[Any], now: float, queued_extra: dict[str, int]) -> PEProgress:
        items_in, items_out, busy, queued, seen = row
        count = self._count(pe, seen)
        history = self._history[pe]
        history.append((now, items_in, busy))
        while len(history) > 2 and now - history[1][0] >= _RATE_WINDOW_S:
            history.popleft()
        then, then_in, then_busy = history[0]
        span = now - then
        rate = (items_in - then_in) / span if span > 0 else 0.0
        busy_share = (busy - then_busy) / span / max(1, count) if span > 0 else 0.0
        if self._final is not None:  # the whole run, once it is over
            elapsed = max(1e-9, now - self._start)
            rate, busy_share = items_in / elapsed, busy / elapsed / max(1, count)
        return PEProgress(
            pe=pe,
            instances=count,
            items_in=items_in,
            items_out=items_out,
            rate=rate,
            queued=queued + max(0, queued_extra.get(pe, 0)),
            busy=min(1.0, max(0.0, busy_share)),
            done=self._final is not None,
        )
