"""Moving messages for the static executor (``executor.py``): batches to other workers'
instances, credits, holding what may not be processed yet, end-of-stream markers.

The rules (batching, credits, the level rule that makes waiting deadlock-free) are in
``executor.py``'s docstring and docs/design.md; this is their code, apart from the loop
that runs the instances, so that each module has one job. :class:`MessageFlow` is the
executor's base: it holds no state of its own, only the methods that act on the
executor's buffers, inboxes and stack.
"""

from __future__ import annotations

import logging
import pickle
from collections import deque
from itertools import repeat
from time import perf_counter
from typing import Any, Protocol

from dispel4py.engine.plan import Plan
from dispel4py.engine.wiring import unpicklable_message
from dispel4py.engine.writers import SAMPLE_MASK, Outbox, approx_size, sized_limit
from dispel4py.errors import TransportError

__all__ = ["MessageFlow", "Transport", "Reporter", "CREDIT_UNITS"]

CREDIT_UNITS = 8  # a credit (``--credits``) is this many units; a batch takes its bytes' share

_log = logging.getLogger("dispel4py.engine")


class Transport(Protocol):
    def send(self, worker: int, message: Any) -> None: ...
    def recv(self) -> Any: ...
    def poll(self) -> Any: ...  # the next message if one has arrived, else None


class Reporter(Protocol):
    def result_list(self, pe_id: str, output: str) -> list[Any]: ...
    def flush_results(self) -> None: ...


class MessageFlow:
    """What the executor does with an item or a message that is not a ``process`` call."""

    plan: Plan
    worker: int
    transport: Transport | None
    reporter: Reporter
    inboxes: list[deque | None]
    bare: list[bool]
    local_limits: list[int]
    local_limit: int
    local_bytes: int
    active: list[bool]
    stack: list[int]
    level: list[int]
    eos_left: list[int]
    credits: list[int]
    max_credits: int
    batch_bytes: int
    outboxes: dict[tuple[int, str], Outbox]
    held: dict[int, list[tuple[int, str, list[Any], int]]]
    flush_interval: float
    _flush_by: list[float]
    debug: bool

    def drain(self, iid: int) -> None:
        raise NotImplementedError  # the executor's

    # -- moving messages -----------------------------------------------------------------
    def deliver(self, target: int, port: str, data: Any) -> None:
        inbox = self.inboxes[target]
        if inbox is not None:
            inbox.append(data if self.bare[target] else (port, data))
            n = len(inbox)
            if n & SAMPLE_MASK == 1:
                self.local_limits[target] = sized_limit(data, n, self.local_limit, self.local_bytes)
            if n >= self.local_limits[target] and not self.active[target]:
                self.drain(target)
            return
        self.outboxes[(target, port)].put(data)  # sent when full, or when an item waited long

    def _send(self, target: int, message: Any) -> None:
        assert self.transport is not None
        self.transport.send(self.plan.placement.worker_of[target], message)

    def _send_now(self, target: int, port: str) -> None:
        """Send the buffer for (``target``, ``port``), waiting for credit if needed."""
        outbox = self.outboxes.get((target, port))
        if outbox is None or not outbox.items:
            return
        if self.debug and self.credits[target] <= 0:
            _log.debug(
                "worker %d: waits for credit from %s (instance %d) on worker %d",
                self.worker,
                *self._name(target),
                self.plan.worker_of(target),
            )
        cost = self._cost(outbox.items)
        while self.credits[target] < cost:
            assert self.transport is not None
            self._release_processable()
            if self.credits[target] < cost:
                self.handle(self.transport.recv())
        items = outbox.take()  # after the wait: a nested drain may have sent the buffer
        if not items:
            return
        self.credits[target] -= cost
        if self.debug:
            _log.debug(
                "worker %d: batch of %d item%s to %s (instance %d) input '%s' on worker %d, "
                "%d credit unit%s left",
                self.worker,
                len(items),
                "" if len(items) == 1 else "s",
                *self._name(target),
                port,
                self.plan.worker_of(target),
                self.credits[target],
                "" if self.credits[target] == 1 else "s",
            )
        try:
            self._send(target, ("D", self.worker, target, port, items, cost))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TransportError(unpicklable_message(self.plan, target, port, items, exc)) from exc

    def flush_all(self) -> None:
        """Send every buffer that has credit, and pending results (never blocks).

        Inside a long drain, messages that have arrived are taken in first (never waiting):
        returned credits let a slow stage's items reach the next stage at once, not at the
        end of the drain; data follows the level rule as in a wait for credit."""
        self._flush_by[0] = perf_counter() + self.flush_interval
        if self.stack and self.transport is not None:
            while (message := self.transport.poll()) is not None:
                self.handle(message)
        for (target, port), outbox in list(self.outboxes.items()):
            if outbox.items and self.credits[target] >= self._cost(outbox.items):
                self._send_now(target, port)
        self.reporter.flush_results()

    def handle(self, message: Any) -> None:
        kind = message[0]
        if kind == "D":
            _, src, iid, port, items, cost = message
            if self._must_hold(iid):
                self.held.setdefault(iid, []).append((src, port, items, cost))
                return
            inbox = self.inboxes[iid]
            assert inbox is not None
            inbox.extend(items if self.bare[iid] else zip(repeat(port), items))
            self._send_credit(src, iid, cost)
            if self.stack:
                self.drain(iid)
        elif kind == "C":
            self.credits[message[1]] += message[2]
        elif kind == "E":
            self.eos_left[message[1]] -= message[2]
            if self.debug:
                _log.debug(
                    "worker %d: end-of-stream marker for %s (instance %d), %d to come",
                    self.worker,
                    *self._name(message[1]),
                    self.eos_left[message[1]],
                )
        else:
            raise RuntimeError(f"dispel4py internal error: unexpected message {kind!r}")

    def _send_credit(self, src: int, iid: int, cost: int) -> None:
        assert self.transport is not None
        self.transport.send(src, ("C", iid, cost))

    def _cost(self, items: list[Any]) -> int:
        """Credit units a batch takes: its bytes (estimated from its first item) in
        ``CREDIT_UNITS`` ths of ``batch_bytes``, rounded down (an array of 4 MB and its
        header take one credit, as before), at least one, never more than all credits (an
        item of 20 MB). So in-flight bytes stay within about ``credits`` full batches per
        destination instance, while up to ``CREDIT_UNITS`` times as many small batches may
        be in flight: a producer of tiny items no longer stops and waits for each
        acknowledgement (on ``multi`` the queue's feeder thread sends a batch only when it
        gets the GIL, up to 5 ms late, so 4 batches in flight kept the producer waiting)."""
        size = approx_size(items[0]) * len(items)
        return max(1, min(self.max_credits, size * CREDIT_UNITS // self.batch_bytes))

    def _must_hold(self, iid: int) -> bool:
        """Whether a batch for ``iid`` must wait: processing it now would break the
        increasing levels of the stack (see the module docstring)."""
        return bool(self.stack) and self.level[iid] <= self.level[self.stack[-1]]

    def _release_processable(self) -> None:
        """Take in (and acknowledge) held batches that may now be processed, then process them."""
        if not self.held:
            return
        for iid in [i for i in self.held if not self._must_hold(i)]:
            if iid in self.held and not self._must_hold(iid):
                self._release_held(iid)
                if self.stack:
                    self.drain(iid)

    def _release_held(self, iid: int) -> None:
        inbox = self.inboxes[iid]
        assert inbox is not None
        for src, port, items, cost in self.held.pop(iid):
            inbox.extend(items if self.bare[iid] else zip(repeat(port), items))
            self._send_credit(src, iid, cost)

    def _name(self, iid: int) -> tuple[str, int]:
        return self.plan.pe_of(iid), iid
