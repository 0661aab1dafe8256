"""The bounded hand-off between a run and a consumer of its results (``dispel4py.stream``).

Why one place: every mapping already brings collected outputs to the driver through a
:class:`ResultCollector` (``extend`` for batches that arrive from workers, ``result_list``
for the lists an in-process executor fills). :class:`StreamingCollector` is that collector
with a bounded queue behind it: when the consumer is slow the queue fills, ``put`` blocks
the driver's thread, the driver stops reading its workers' result channels, and each
transport's own limits make the workers wait (docs/design.md, "Results while the run
goes"). No mapping has streaming code of its own beyond keeping its channel bounded.

The consumer's side never blocks the run for good: :meth:`Handoff.close` (the consumer
stopped early) wakes a blocked ``put``, which raises :class:`StreamClosed` so the mapping
unwinds and cleans up as after any failure; or, for a mapping that cannot stop a run
midway without ending the process (``mpi``), drops the rest (``drop_when_closed``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from typing import Any

from dispel4py.errors import Dispel4PyError
from dispel4py.mappings.base import ResultCollector

__all__ = ["Handoff", "StreamClosed", "StreamingCollector", "END"]

END = object()  # what Handoff.get returns once the run has ended and every item was taken
_WAKE_S = 0.25  # the consumer's wait is cut in slices so that Ctrl-C is seen promptly


class StreamClosed(Dispel4PyError):
    """The consumer stopped reading: raised in the run's thread to unwind the run."""


class Handoff:
    """At most ``capacity`` result items between the run and the consumer.

    ``put`` adds a batch in parts, as room appears, so the queue never holds more than
    ``capacity`` items however large the batches the workers send.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {capacity})")
        self.capacity = capacity
        self.held = 0  # items put and not yet taken
        self.closed = False  # the consumer stopped
        self.drop_when_closed = False
        self._batches: deque[tuple[str, str, deque[Any]]] = deque()
        self._ended = False
        self._putting = False  # the run waits for room
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        # readable once the consumer stopped: driver loops that wait on file descriptors
        # (the process and Redis pools) wait on it too, so an idle run stops at once
        self._stop_r, self._stop_w = os.pipe()

    @property
    def stopped_fd(self) -> int:
        """A file descriptor that becomes readable when the consumer stops."""
        return self._stop_r

    # -- the run's side ------------------------------------------------------------------------
    def put(self, pe_id: str, output: str, items: list[Any]) -> None:
        """Queue ``items``, waiting for room; :class:`StreamClosed` once the consumer stopped."""
        start = 0
        with self._cond:
            while start < len(items):
                while self.held >= self.capacity and not self.closed:
                    self._putting = True
                    self._cond.wait()
                    self._putting = False
                if self.closed:
                    if self.drop_when_closed:
                        return
                    raise StreamClosed("the consumer of dispel4py.stream stopped reading")
                part = items[start : start + self.capacity - self.held]
                start += len(part)
                self._batches.append((pe_id, output, deque(part)))
                self.held += len(part)
                self._cond.notify_all()

    def end(self, error: BaseException | None = None) -> None:
        """The run is over (``error``: how it failed); the consumer gets what is left first."""
        with self._cond:
            self._ended, self._error = True, error
            self._cond.notify_all()

    # -- the consumer's side ---------------------------------------------------------------------
    def get(self) -> Any:
        """The next ``(pe_id, output, item)``, waiting for it; :data:`END` at the end; the
        run's error, raised, after every item that came before it."""
        with self._cond:
            while not self._batches:
                if self._ended:
                    if self._error is not None:
                        error, self._error = self._error, None
                        raise error
                    return END
                self._cond.wait(_WAKE_S)
            pe_id, output, items = self._batches[0]
            item = items.popleft()
            if not items:
                self._batches.popleft()
            self.held -= 1
            if self._putting:  # wake the run only when it waits for room
                self._cond.notify_all()
            return pe_id, output, item

    def close(self) -> None:
        """The consumer stops: a waiting ``put`` gives up (or drops), queued items go."""
        with self._cond:
            if not self.closed:
                os.write(self._stop_w, b"x")
            self.closed = True
            self._batches.clear()
            self.held = 0
            self._cond.notify_all()

    def release(self) -> None:
        """Close the wake-up pipe, once the run's thread is over (idempotent)."""
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._stop_r = self._stop_w = -1


class StreamingCollector(ResultCollector):
    """A :class:`ResultCollector` that passes results on to a :class:`Handoff` instead of
    keeping them: batches from workers at once, an in-process executor's lists when it
    flushes them (every ``Tuning.results_limit`` items or ``results_s`` seconds)."""

    def __init__(self, handoff: Handoff) -> None:
        super().__init__()
        self.handoff = handoff
        self.stopped_fd = handoff.stopped_fd

    def check_stopped(self) -> None:
        if self.handoff.closed and not self.handoff.drop_when_closed:
            raise StreamClosed("the consumer of dispel4py.stream stopped reading")

    def extend(self, pe_id: str, output: str, items: list[Any]) -> None:
        self.handoff.put(pe_id, output, items)

    def flush_results(self) -> None:
        for (pe_id, output), items in self.lists.items():
            if items:
                batch = items[:]
                items.clear()
                self.handoff.put(pe_id, output, batch)
