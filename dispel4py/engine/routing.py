"""Groupings: which destination instance(s) receive an item.

* shuffle (no grouping): round-robin per source instance,
* group-by (a list of keys/indexes): a hash of the key tuple that is stable across
  processes and hosts (CRC-32 of a canonical encoding; never Python's salted ``hash()``),
* ``'all'``: a copy to every instance,
* ``'global'``: instance 0 only.

The group-by rule (keys that are ``==`` reach the same instance) and its hash live in
``keys.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from dispel4py.engine.failure import short_repr
from dispel4py.engine.keys import UnencodableKey, stable_hash
from dispel4py.errors import GraphError, GroupingError

__all__ = [
    "Grouping",
    "parse_grouping",
    "stable_hash",
    "Route",
    "RoundRobinRoute",
    "GroupByRoute",
    "BroadcastRoute",
    "FixedRoute",
]

SHUFFLE = "shuffle"
GROUP_BY = "group-by"
ALL = "all"
GLOBAL = "global"


@dataclasses.dataclass(frozen=True)
class Grouping:
    kind: str
    keys: tuple[Any, ...] = ()

    def describe(self) -> str:
        return f"group-by {list(self.keys)}" if self.kind == GROUP_BY else self.kind


def parse_grouping(value: Any, pe_id: str, port: str) -> Grouping:
    """Validate the ``grouping`` of input ``port`` of ``pe_id``."""
    if not value:
        return Grouping(SHUFFLE)
    if value in (ALL, GLOBAL):
        return Grouping(value)
    if isinstance(value, (list, tuple)):
        return Grouping(GROUP_BY, tuple(value))
    raise GraphError(
        f"input '{port}' of {pe_id} has grouping {value!r}, which dispel4py cannot apply; "
        "use a list of item keys/indexes (group-by, e.g. [0]), 'all' or 'global', "
        "or no grouping (shuffle)"
    )


# -- routes -----------------------------------------------------------------------------
class Route:
    """One connection seen from one source instance: where each item goes."""

    def __init__(self, port: str, targets: Sequence[int]) -> None:
        self.port = port
        self.targets = list(targets)

    def targets_for(self, data: Any) -> Sequence[int]:
        raise NotImplementedError


class RoundRobinRoute(Route):
    def __init__(self, port: str, targets: Sequence[int], start: int = 0) -> None:
        super().__init__(port, targets)
        self._next = start % len(self.targets)

    def targets_for(self, data: Any) -> Sequence[int]:
        i = self._next
        self._next = (i + 1) % len(self.targets)
        return (self.targets[i],)


class FixedRoute(Route):
    """Always the same single instance ('global', or shuffle to one instance)."""

    def targets_for(self, data: Any) -> Sequence[int]:
        return self.targets


class BroadcastRoute(Route):
    def targets_for(self, data: Any) -> Sequence[int]:
        return self.targets


class GroupByRoute(Route):
    def __init__(self, port: str, targets: Sequence[int], keys: Sequence[Any], dest: str) -> None:
        super().__init__(port, targets)
        self.keys = tuple(keys)
        self.dest = dest

    def targets_for(self, data: Any) -> Sequence[int]:
        try:
            key = tuple([data[k] for k in self.keys])
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(
                f"cannot group item {_short(data)} for input '{self.port}' of {self.dest} by "
                f"{list(self.keys)}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            return (self.targets[stable_hash(key) % len(self.targets)],)
        except UnencodableKey as exc:
            raise GroupingError(self.dest, self.port, self._refusal(data, key, exc)) from exc

    def _refusal(self, data: Any, key: tuple, exc: UnencodableKey) -> str:
        value = key[0] if len(key) == 1 else key
        part = "has" if exc.culprit is value else f"contains {_short(exc.culprit)} of"
        return (
            f"cannot group item {_short(data)} for input '{self.port}' of {self.dest} "
            f"(grouping group-by {list(self.keys)}): its key {_short(value)} {part} type "
            f"{exc.type_name}, which {exc.reason}. Group by a str, int, float, bytes, tuple, "
            "frozenset or another plain value: write e.g. str(key), tuple(array.tolist()) "
            "or a tuple of the object's fields into the item"
        )


def _short(data: Any) -> str:

    return short_repr(data)
