"""Writers: what ``pe.write(output, item)`` calls, one per (instance, output).

A writer counts the item, keeps it as a result if the output is collected, and hands it to
each route's chosen destination instance(s) through the executor. When one item goes to
several destinations, the extra destinations get deep copies, so that a PE mutating its
input cannot change what another PE sees (the same on every mapping).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from typing import Any

from dispel4py.routing import BroadcastRoute, FixedRoute, RoundRobinRoute, Route

__all__ = ["Writer", "LocalWriter", "make_writer"]

_IMMUTABLE = (int, float, str, bytes, bool, type(None), complex)


def _copy(data: Any) -> Any:
    return data if type(data) in _IMMUTABLE else copy.deepcopy(data)


class Writer:
    """General case: any number of routes, optional result collection."""

    __slots__ = ("routes", "results", "deliver", "count", "flush_results")

    def __init__(
        self,
        routes: list[Route],
        results: list[Any] | None,
        deliver: Callable[[int, str, Any], None],
        flush_results: Callable[[], None],
    ) -> None:
        self.routes = routes
        self.results = results
        self.deliver = deliver
        self.flush_results = flush_results
        self.count = 0

    def write(self, data: Any) -> None:
        self.count += 1
        first = True
        results = self.results
        if results is not None:
            results.append(data)
            first = False
            if len(results) >= 4096:
                self.flush_results()
        for route in self.routes:
            for target in route.targets_for(data):
                self.deliver(target, route.port, data if first else _copy(data))
                first = False


class LocalWriter:
    """Fast path: one destination instance on this worker, no results."""

    __slots__ = ("inbox", "port", "limit", "drain", "target", "count")

    def __init__(
        self, inbox: deque, port: str, limit: int, drain: Callable[[int], None], target: int
    ) -> None:
        self.inbox = inbox
        self.port = port
        self.limit = limit
        self.drain = drain
        self.target = target
        self.count = 0

    def write(self, data: Any) -> None:
        self.count += 1
        inbox = self.inbox
        inbox.append((self.port, data))
        if len(inbox) >= self.limit:
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
) -> Writer | LocalWriter:
    if results is None and len(routes) == 1 and len(routes[0].targets) == 1:
        target = routes[0].targets[0]
        inbox = local_inboxes[target]
        if inbox is not None and isinstance(routes[0], (FixedRoute, RoundRobinRoute, BroadcastRoute)):
            return LocalWriter(inbox, routes[0].port, limit, drain, target)
    return Writer(routes, results, deliver, flush_results)
