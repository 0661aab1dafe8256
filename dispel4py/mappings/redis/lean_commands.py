"""The commands :mod:`lean_client` speaks itself: for each redis-py method name, the command
it sends and the reply as redis-py shapes it (``decode_responses=False``, RESP2).

Only what a driver with no local worker uses on its normal path is here; a method not
listed, or an option a builder does not handle (it raises :class:`Unsupported`), goes to
redis-py itself (imported then). ``tests/integration/test_redis_lean_client.py`` checks
every entry against redis-py on a real server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["COMMANDS", "Unsupported", "shape_stream_list"]


class Unsupported(Exception):
    """An option this table does not build: redis-py handles the call."""


def _raw(reply: Any) -> Any:
    return reply


def _ok(reply: Any) -> bool:
    return reply == b"OK"


def _set_result(reply: Any) -> Any:
    return reply and reply == b"OK"


def _text(reply: Any) -> Any:
    return reply.decode() if isinstance(reply, bytes) else reply


def _info(reply: Any) -> dict[str, Any]:
    """``INFO``'s ``key:value`` lines; numbers as numbers, as redis-py gives them (the
    ``k=v,…`` values of other sections stay text)."""
    info: dict[str, Any] = {}
    for line in _text(reply).splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, value = line.split(":", 1)
            info[key] = _number(value)
    return info


def _number(value: str) -> Any:
    try:
        return float(value) if "." in value else int(value)
    except ValueError:
        return value


def shape_stream_list(reply: Any) -> Any:
    """``XRANGE``'s entries as ``[(id, {field: value})]``."""
    if reply is None:
        return None
    return [(r[0], dict(zip(r[1][::2], r[1][1::2]))) if r is not None else (None, None) for r in reply]


def _flat(fields: dict[Any, Any]) -> list[Any]:
    out: list[Any] = []
    for name, value in fields.items():
        out += (name, value)
    return out


def _names(keys: Any, args: Iterable[Any]) -> list[Any]:
    first = [keys] if isinstance(keys, (str, bytes)) else list(keys)
    return [*first, *args]


def _set(
    name: Any, value: Any, ex: Any = None, px: Any = None, nx: bool = False, xx: bool = False
) -> list[Any]:
    command = ["SET", name, value]
    if ex is not None:
        command += ("EX", ex)
    if px is not None:
        command += ("PX", px)
    return command + (["NX"] if nx else []) + (["XX"] if xx else [])


def _hset(name: Any, key: Any = None, value: Any = None, mapping: dict[Any, Any] | None = None) -> list[Any]:
    pairs = ([key, value] if key is not None else []) + _flat(mapping or {})
    return ["HSET", name, *pairs]


def _xadd(
    name: Any,
    fields: dict[Any, Any],
    id: Any = "*",
    maxlen: Any = None,
    approximate: bool = True,
    nomkstream: bool = False,
) -> list[Any]:
    command = ["XADD", name]
    if maxlen is not None:
        command += ["MAXLEN", "~", maxlen] if approximate else ["MAXLEN", maxlen]
    if nomkstream:
        command.append("NOMKSTREAM")
    return [*command, id, *_flat(fields)]


def _xtrim(name: Any, maxlen: Any = None, approximate: bool = True, minid: Any = None) -> list[Any]:
    if (maxlen is None) == (minid is None):
        raise Unsupported("XTRIM takes one of maxlen and minid")
    command = ["XTRIM", name, "MAXLEN" if maxlen is not None else "MINID"]
    return [*command, *(["~"] if approximate else []), maxlen if maxlen is not None else minid]


def _xrange(name: Any, min: Any = "-", max: Any = "+", count: Any = None) -> list[Any]:
    return ["XRANGE", name, min, max, *(["COUNT", count] if count is not None else [])]


def _xgroup_create(name: Any, groupname: Any, id: Any = "$", mkstream: bool = False) -> list[Any]:
    return ["XGROUP", "CREATE", name, groupname, id, *(["MKSTREAM"] if mkstream else [])]


def _scan(cursor: Any = 0, match: Any = None, count: Any = None) -> list[Any]:
    return ["SCAN", cursor, *(["MATCH", match] if match else []), *(["COUNT", count] if count else [])]


def _expire(name: Any, time: Any) -> list[Any]:
    if not isinstance(time, int):
        raise Unsupported("a timedelta")
    return ["EXPIRE", name, time]


def _fixed(*words: str) -> Callable[..., list[Any]]:
    """A command whose arguments are the call's, in order."""

    def build(*args: Any) -> list[Any]:
        return [*words, *args]

    return build


# method -> (build the command from the call's arguments, shape the reply)
COMMANDS: dict[str, tuple[Callable[..., list[Any]], Callable[[Any], Any]]] = {
    "get": (_fixed("GET"), _raw),
    "set": (_set, _set_result),
    "mget": (lambda keys, *args: ["MGET", *_names(keys, args)], _raw),
    "exists": (_fixed("EXISTS"), _raw),
    "delete": (_fixed("DEL"), _raw),
    "expire": (_expire, bool),
    "hset": (_hset, _raw),
    "hsetnx": (_fixed("HSETNX"), _raw),
    "hget": (_fixed("HGET"), _raw),
    "hmget": (lambda name, keys, *args: ["HMGET", name, *_names(keys, args)], _raw),
    "sadd": (_fixed("SADD"), _raw),
    "incr": (lambda name, amount=1: ["INCRBY", name, amount], _raw),
    "publish": (_fixed("PUBLISH"), _raw),
    "eval": (_fixed("EVAL"), _raw),
    "evalsha": (_fixed("EVALSHA"), _raw),
    "script_load": (_fixed("SCRIPT", "LOAD"), _text),
    "xadd": (_xadd, _raw),
    "xack": (_fixed("XACK"), _raw),
    "xdel": (_fixed("XDEL"), _raw),
    "xlen": (_fixed("XLEN"), _raw),
    "xtrim": (_xtrim, _raw),
    "xrange": (_xrange, shape_stream_list),
    "xgroup_create": (_xgroup_create, _ok),
    "info": (_fixed("INFO"), _info),
    "scan": (_scan, lambda reply: (int(reply[0]), reply[1])),
    "ping": (lambda: ["PING"], lambda reply: reply == b"PONG"),
    "time": (lambda: ["TIME"], lambda reply: (int(reply[0]), int(reply[1]))),
    "client_setname": (_fixed("CLIENT", "SETNAME"), _ok),
}
