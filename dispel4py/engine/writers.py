"""Writers: what ``pe.write(output, item)`` calls, one per (instance, output).

A writer counts the item, keeps it as a result if the output is collected, and hands it to
each route's chosen destination instance(s) through the executor. When one item goes to
several destinations, the extra destinations get deep copies, so that a PE mutating its
input cannot change what another PE sees (the same on every mapping).

Memory is bounded by bytes as well as by items: a local inbox is drained, and a result list
shipped, when it holds ``limit`` items or about ``byte_limit`` bytes. Sizes are estimated
from a sample (the first item of a fill and every 64th after it), never per item, so tiny
items pay nothing; see :func:`approx_size`.
"""

from __future__ import annotations

import copy
import itertools
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

from dispel4py.engine.failure import short_repr
from dispel4py.engine.routing import BroadcastRoute, FixedRoute, RoundRobinRoute, Route

__all__ = [
    "Writer",
    "LocalWriter",
    "BareLocalWriter",
    "Outbox",
    "SpreadWriter",
    "BufferSpreadWriter",
    "make_writer",
    "local_writers",
    "approx_size",
    "sized_limit",
    "SAMPLE_MASK",
    "SAMPLE_EVERY",
    "RESULTS_LIMIT",
]

IMMUTABLE_TYPES = (int, float, str, bytes, bool, type(None), complex)  # shared, never copied
SAMPLE_MASK = 63  # sample an item's size at fills 1, 65, 129, ...
SAMPLE_EVERY = SAMPLE_MASK + 1  # the writers' fast paths: at most this many fills between samples
QUICK_S = 0.002  # an outbox looks at the clock about this often while items come fast
RESULTS_LIMIT = 4096  # result items a worker holds before shipping them
RESULTS_BYTES = 16 << 20


def approx_size(item: Any, depth: int = 2) -> int:
    """A cheap estimate of the bytes ``item`` holds: exact for str/bytes/arrays, a sample
    of the first elements of containers, a small constant for scalars and other objects."""
    kind = type(item)
    if kind is int or kind is float:  # first: no failed attribute lookup for the commonest items
        return 32
    if kind is str or kind is bytes or kind is bytearray:
        return len(item) + 48
    nbytes = getattr(item, "nbytes", None)  # numpy arrays, memoryviews
    if isinstance(nbytes, int):
        return nbytes + 96
    if depth and (kind is tuple or kind is list or kind is dict):
        values = list(item.values()) if kind is dict else item
        n = len(values)
        if not n:
            return 56
        head = values[:8]
        return 56 + sum(approx_size(v, depth - 1) for v in head) * n // len(head)
    return 32


def sized_limit(item: Any, filled: int, limit: int, byte_limit: int) -> int:
    """The item limit of a buffer now holding ``filled`` items, ``item`` the newest."""
    return max(filled, min(limit, byte_limit // max(1, approx_size(item))))


def _copy(data: Any) -> Any:
    if type(data) in IMMUTABLE_TYPES:
        return data
    try:
        return copy.deepcopy(data)
    except Exception as exc:
        raise TypeError(
            f"item {short_repr(data)} goes to several destinations, so each gets its own copy, "
            f"and it cannot be copied ({type(exc).__name__}: {exc}); write plain data "
            "(numbers, strings, lists, dicts, arrays)"
        ) from None


class Writer:
    """General case: any number of routes, optional result collection."""

    __slots__ = (
        "routes",
        "results",
        "deliver",
        "count",
        "flush_results",
        "results_limit",
        "max_results",
        "results_s",
        "results_due",
    )

    def __init__(
        self,
        routes: list[Route],
        results: list[Any] | None,
        deliver: Callable[[int, str, Any], None],
        flush_results: Callable[[], None],
        max_results: int = RESULTS_LIMIT,
        results_s: float = 0.0,
    ) -> None:
        self.routes = routes
        self.results = results
        self.deliver = deliver
        self.flush_results = flush_results
        self.count = 0
        self.results_limit = self.max_results = max_results
        self.results_s = results_s  # > 0 while streaming: a result waits at most this long
        self.results_due = 0.0

    def write(self, data: Any) -> None:
        self.count += 1
        first = True
        results = self.results
        if results is not None:
            results.append(data)
            first = False
            n = len(results)
            if n & SAMPLE_MASK == 1:
                self.results_limit = sized_limit(data, n, self.max_results, RESULTS_BYTES)
            if n >= self.results_limit or (self.results_s and perf_counter() >= self.results_due):
                self.flush_results()
                self.results_limit = self.max_results
                if self.results_s:
                    self.results_due = perf_counter() + self.results_s
        for route in self.routes:
            for target in route.targets_for(data):
                self.deliver(target, route.port, data if first else _copy(data))
                first = False


class LocalWriter:
    """Fast path: one destination instance on this worker, no results. Its inbox holds
    ``(port, item)`` pairs, or the items alone when the instance has one connected input
    (``bare``: no pair to build per item, see ``engine/inbox.py``).

    A write compares the inbox's length with one number, ``check``: the next fill at which
    to sample an item's size (every ``SAMPLE_EVERY`` fills) or the limit, whichever comes
    first; :meth:`filled` does the rest. The executor sets ``check`` back to 1 when it has
    drained the inbox, so the first item of the next fill is sampled."""

    __slots__ = (
        *("inbox", "port", "limit", "max_items", "max_bytes", "drain", "target", "count"),
        *("check", "output", "other"),
    )

    def __init__(
        self,
        inbox: deque,
        port: str,
        limit: int,
        drain: Callable[[int], None],
        target: int,
        byte_limit: int,
    ) -> None:
        self.inbox = inbox
        self.port = port
        self.limit = self.max_items = limit
        self.max_bytes = byte_limit
        self.drain = drain
        self.target = target
        self.count = 0
        self.check = 1
        self.output: str | None = None  # set with the PE's other writes by install_pe_write
        self.other: Callable[..., None] = _no_other

    def write(self, data: Any) -> None:
        self.count += 1
        inbox = self.inbox
        inbox.append((self.port, data))
        if len(inbox) >= self.check:
            self.filled(data, len(inbox))

    def filled(self, data: Any, n: int) -> None:
        """The rare part of a write: the inbox holds ``n`` items, ``data`` the newest:
        sample its size, drain the inbox if it is full, set the next ``check``."""
        limit = self.limit = sized_limit(data, n, self.max_items, self.max_bytes)
        if n >= limit:
            self.drain(self.target)
        n = len(self.inbox)  # 0 after a drain: the next fill's first item is sampled
        self.check = min(limit, n + SAMPLE_EVERY) if n else 1

    def pe_write(self, name: str, data: Any, **kwargs: Any) -> None:
        """``pe.write(name, data)`` in one call (see ``wiring.install_pe_write``)."""
        if name != self.output:
            self.other(name, data, **kwargs)
            return
        self.write(data)


class BareLocalWriter(LocalWriter):
    """:class:`LocalWriter` for an inbox of items alone (its instance has one input)."""

    __slots__ = ()

    def write(self, data: Any) -> None:
        self.count += 1
        inbox = self.inbox
        inbox.append(data)
        if len(inbox) >= self.check:
            self.filled(data, len(inbox))

    def pe_write(self, name: str, data: Any, **kwargs: Any) -> None:
        """:meth:`write` behind the output's name, written out (no second call per item)."""
        if name != self.output:
            self.other(name, data, **kwargs)
            return
        self.count += 1
        inbox = self.inbox
        inbox.append(data)
        if len(inbox) >= self.check:
            self.filled(data, len(inbox))


class Outbox:
    """The batch being filled for (``target``, ``port``) on another worker.

    ``items`` is the same list for the whole run (writers hold it); ``send`` ships it when
    it holds ``limit`` items (``batch_size``, fewer for large items), and ``flush`` ships
    every batch when an item has waited ``flush_interval`` (``due[0]``, kept by the
    executor), so a slow producer's items do not sit in a part-filled batch.

    A put compares the batch's length with ``check`` only, as a local writer does; the
    clock is read in :meth:`filled`, at the next look: after ``stride`` more puts, which
    is 1 while items come slowly (every put looks, as before) and grows with the rate at
    which they come, up to ``SAMPLE_EVERY``, so that a look comes about every ``QUICK_S``:
    a fast producer does not read the clock per item, and an item waits at most about
    ``QUICK_S`` longer to be shipped. Sizes are sampled at fills 1, 65, ... as before."""

    __slots__ = (
        *("items", "limit", "max_items", "max_bytes", "target", "port", "send", "flush", "due"),
        *("check", "sampled", "stride", "looked"),
    )

    def __init__(
        self,
        target: int,
        port: str,
        max_items: int,
        max_bytes: int,
        send: Callable[[int, str], None],
        flush: Callable[[], None],
        due: list[float],
    ) -> None:
        self.items: list[Any] = []
        self.limit = self.max_items = max_items
        self.max_bytes = max_bytes
        self.target, self.port = target, port
        self.send, self.flush, self.due = send, flush, due
        self.check, self.sampled, self.stride, self.looked = 1, 0, 1, 0.0

    def put(self, data: Any) -> None:
        items = self.items
        items.append(data)
        if len(items) >= self.check:
            self.filled(data, len(items))

    def filled(self, data: Any, n: int) -> None:
        """The rare part of a put (``n`` items, ``data`` the newest): sample, send when
        full, else ship every batch when an item has waited too long; the next look."""
        now = perf_counter()
        if n == 1 or n - self.sampled >= SAMPLE_EVERY:
            self.limit = sized_limit(data, n, self.max_items, self.max_bytes)
            self.sampled = n
        if n >= self.limit:
            self.send(self.target, self.port)
        elif now > self.due[0]:
            self.flush()
        took, self.looked = now - self.looked, now  # the last ``stride`` puts took this long
        self.stride = max(1, min(SAMPLE_EVERY, int(self.stride * QUICK_S / took))) if took > 0 else 1
        if self.items:  # else take() has set check to 1
            self.check = min(self.limit, len(self.items) + self.stride)

    def take(self) -> list[Any]:
        """The items to send now (the list itself stays, empty)."""
        items = self.items[:]
        self.items.clear()
        self.check, self.sampled = 1, 0
        return items


class SpreadWriter:
    """Fast path for one shuffle route over several destinations, or one destination on
    another worker, without results: round-robin over the destinations' ``put``
    (an :class:`Outbox` or a local writer), in the order :class:`RoundRobinRoute` would
    choose them (from the same start)."""

    __slots__ = ("routes", "turn", "count", "dests", "output", "other")

    def __init__(self, route: Route, puts: list[Any], dests: list[Any] | None = None) -> None:
        start = getattr(route, "_next", 0)
        self.routes = [route]
        self.turn = itertools.cycle(puts[start:] + puts[:start]).__next__  # the next destination's put
        self.count = 0
        self.dests = dests or []  # the local writers and outboxes behind the puts
        self.output: str | None = None  # as LocalWriter's
        self.other: Callable[..., None] = _no_other

    def write(self, data: Any) -> None:
        self.count += 1
        self.turn()(data)

    def pe_write(self, name: str, data: Any, **kwargs: Any) -> None:
        if name != self.output:
            self.other(name, data, **kwargs)
            return
        self.count += 1
        self.turn()(data)


class BufferSpreadWriter(SpreadWriter):
    """:class:`SpreadWriter` whose destinations are all buffers of items alone (bare local
    inboxes, :class:`Outbox` es): the destination's ``put`` written out in the writer, so a
    write is one call, not three (``write``, the turn, the put)."""

    __slots__ = ()

    def __init__(self, route: Route, dests: list[Any]) -> None:
        # per destination: its buffer's append, the buffer, the destination (check, filled)
        buffers = [d.items if isinstance(d, Outbox) else d.inbox for d in dests]
        super().__init__(route, [(b.append, b, d) for b, d in zip(buffers, dests, strict=True)], dests)

    def write(self, data: Any) -> None:
        self.count += 1
        append, buffer, dest = self.turn()
        append(data)
        if len(buffer) >= dest.check:
            dest.filled(data, len(buffer))

    def pe_write(self, name: str, data: Any, **kwargs: Any) -> None:
        if name != self.output:
            self.other(name, data, **kwargs)
            return
        self.count += 1
        append, buffer, dest = self.turn()
        append(data)
        if len(buffer) >= dest.check:
            dest.filled(data, len(buffer))


def _no_other(name: str, data: Any, **kwargs: Any) -> None:
    raise AssertionError("dispel4py internal error: pe_write of a writer that install_pe_write did not name")


def local_writers(writer: Any) -> list[LocalWriter]:
    """The local writers behind ``writer`` (whose ``check`` the executor resets)."""
    if isinstance(writer, LocalWriter):
        return [writer]
    return [d for d in getattr(writer, "dests", ()) if isinstance(d, LocalWriter)]


def make_writer(
    routes: list[Route],
    results: list[Any] | None,
    *,
    local_inboxes: list[deque | None],
    deliver: Callable[[int, str, Any], None],
    drain: Callable[[int], None],
    flush_results: Callable[[], None],
    limit: int,
    byte_limit: int,
    max_results: int = RESULTS_LIMIT,
    results_s: float = 0.0,
    bare: list[bool] | None = None,
    outboxes: dict[tuple[int, str], Outbox] | None = None,
) -> Writer | LocalWriter | SpreadWriter:
    """The writer of one output of one instance: a fast path where the item goes to one
    destination chosen without looking at it (no results, no group-by, no broadcast to
    several), else the general :class:`Writer`.

    ``bare[t]``: instance ``t``'s inbox holds items alone; ``outboxes``: the batches for
    other workers' instances (the static executor's; without them, remote items go
    through ``deliver``)."""
    if results is not None or len(routes) != 1:
        return Writer(routes, results, deliver, flush_results, max_results, results_s)
    route = routes[0]
    if not isinstance(route, (FixedRoute, RoundRobinRoute, BroadcastRoute)) or (
        isinstance(route, BroadcastRoute) and len(route.targets) > 1
    ):
        return Writer(routes, results, deliver, flush_results, max_results, results_s)
    puts: list[Any] = []
    for target in route.targets:
        inbox = local_inboxes[target]
        if inbox is not None:
            kind = BareLocalWriter if bare is not None and bare[target] else LocalWriter
            puts.append(kind(inbox, route.port, limit, drain, target, byte_limit))
        elif outboxes is not None and (target, route.port) in outboxes:
            puts.append(outboxes[(target, route.port)])
        else:
            return Writer(routes, results, deliver, flush_results, max_results, results_s)
    if len(puts) == 1 and isinstance(puts[0], LocalWriter):
        return puts[0]
    # a local writer's own count goes unread there: the SpreadWriter counts the output's items
    if all(type(p) is BareLocalWriter or type(p) is Outbox for p in puts):
        return BufferSpreadWriter(route, puts)
    return SpreadWriter(route, [p.write if isinstance(p, LocalWriter) else p.put for p in puts], puts)
