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
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

from dispel4py.engine.failure import short_repr
from dispel4py.engine.routing import BroadcastRoute, FixedRoute, RoundRobinRoute, Route

__all__ = [
    "Writer",
    "LocalWriter",
    "make_writer",
    "approx_size",
    "sized_limit",
    "SAMPLE_MASK",
    "RESULTS_LIMIT",
]

_IMMUTABLE = (int, float, str, bytes, bool, type(None), complex)
SAMPLE_MASK = 63  # sample an item's size at fills 1, 65, 129, ...
RESULTS_LIMIT = 4096  # result items a worker holds before shipping them
RESULTS_BYTES = 16 << 20


def approx_size(item: Any, depth: int = 2) -> int:
    """A cheap estimate of the bytes ``item`` holds: exact for str/bytes/arrays, a sample
    of the first elements of containers, a small constant for scalars and other objects."""
    kind = type(item)
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
    if type(data) in _IMMUTABLE:
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
    """Fast path: one destination instance on this worker, no results."""

    __slots__ = ("inbox", "port", "limit", "max_items", "max_bytes", "drain", "target", "count")

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

    def write(self, data: Any) -> None:
        self.count += 1
        inbox = self.inbox
        inbox.append((self.port, data))
        n = len(inbox)
        if n & SAMPLE_MASK == 1:
            self.limit = sized_limit(data, n, self.max_items, self.max_bytes)
        if n >= self.limit:
            self.drain(self.target)


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
) -> Writer | LocalWriter:
    if results is None and len(routes) == 1 and len(routes[0].targets) == 1:
        target = routes[0].targets[0]
        inbox = local_inboxes[target]
        if inbox is not None and isinstance(routes[0], (FixedRoute, RoundRobinRoute, BroadcastRoute)):
            return LocalWriter(inbox, routes[0].port, limit, drain, target, byte_limit)
    return Writer(routes, results, deliver, flush_results, max_results, results_s)
