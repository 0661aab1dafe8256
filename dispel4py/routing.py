"""Groupings: which destination instance(s) receive an item.

* shuffle (no grouping): round-robin per source instance,
* group-by (a list of keys/indexes): a hash of the key tuple that is stable across
  processes and hosts (CRC-32 of a canonical encoding; never Python's salted ``hash()``),
* ``'all'``: a copy to every instance,
* ``'global'``: instance 0 only.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dispel4py.errors import GraphError

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


@dataclass(frozen=True)
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


# -- stable hashing ---------------------------------------------------------------------
def stable_hash(value: Any) -> int:
    """A hash of ``value`` that is the same in every interpreter and on every host."""
    parts: list[bytes] = []
    _encode(value, parts)
    return zlib.crc32(b"".join(parts))


_pack_double = struct.Struct("<d").pack


def _encode(value: Any, out: list[bytes]) -> None:
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        out.append(b"s%d:" % len(data))
        out.append(data)
    elif isinstance(value, bool) or value is None:
        out.append(b"c" + repr(value).encode())
    elif isinstance(value, int):
        out.append(b"i%d;" % value)
    elif isinstance(value, float):
        if value.is_integer():  # 2.0 and 2 group together, as they compare equal
            out.append(b"i%d;" % int(value))
        else:
            out.append(b"f" + _pack_double(value))
    elif isinstance(value, (bytes, bytearray)):
        out.append(b"b%d:" % len(value))
        out.append(bytes(value))
    elif isinstance(value, (tuple, list)):
        out.append(b"t%d(" % len(value))
        for element in value:
            _encode(element, out)
    elif isinstance(value, (frozenset, set)):
        encoded = sorted(stable_hash(e).to_bytes(4, "little") for e in value)
        out.append(b"S%d(" % len(encoded))
        out.extend(encoded)
    elif isinstance(value, dict):
        encoded = sorted(stable_hash(kv).to_bytes(4, "little") for kv in value.items())
        out.append(b"d%d(" % len(encoded))
        out.extend(encoded)
    else:
        item = getattr(value, "item", None)  # numpy scalars
        if callable(item) and type(value).__module__ == "numpy":
            _encode(item(), out)
        else:
            text = repr(value).encode("utf-8", "surrogatepass")
            out.append(b"r%d:" % len(text))
            out.append(text)


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
            key = tuple(data[k] for k in self.keys)
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(
                f"cannot group item {_short(data)} for input '{self.port}' of {self.dest} by "
                f"{list(self.keys)}: {type(exc).__name__}: {exc}"
            ) from exc
        return (self.targets[stable_hash(key) % len(self.targets)],)


def _short(data: Any) -> str:
    from dispel4py.failure import short_repr

    return short_repr(data)
