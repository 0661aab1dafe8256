"""Names and plain helpers shared by the Redis mappings' driver and workers.

Every key of a run lives under ``d4py:<run id>:`` (:class:`RunNames`); ``GROUP`` is the
consumer group on every stream. :func:`entries` reads ``XREAD``/``XREADGROUP`` replies,
:func:`lost_error` turns a Redis failure into a clear :class:`TransportError`.
"""

from __future__ import annotations

from typing import Any

from dispel4py.engine.plan import Plan
from dispel4py.errors import TransportError
from dispel4py.mappings.redis.server import RedisTarget

__all__ = ["BLOCK_MS", "DRIVER_TTL_MS", "GROUP", "SOCKET_TIMEOUT_S", "RunNames", "entries", "lost_error"]

GROUP = "d4py"
BLOCK_MS = 1000  # longest single wait on the server; socket timeouts are longer
SOCKET_TIMEOUT_S = BLOCK_MS / 1000 + 10
DRIVER_TTL_MS = 5000  # the driver's liveness key expires this long after the driver is gone


class RunNames:
    """The key names of one run (plain data: travels to workers)."""

    def __init__(self, run_id: str, plan: Plan) -> None:
        self.run_id = run_id
        self.prefix = p = f"d4py:{run_id}:"
        placement = plan.placement
        self.instances = len(placement.pe_of)
        self.instance_streams = [f"{p}q:{pe}:{placement.index_of[i]}" for i, pe in enumerate(placement.pe_of)]
        self.info, self.counters, self.reports = p + "info", p + "n", p + "reports"
        self.dead, self.workers, self.driver = p + "dead", p + "workers", p + "driver"

    def stream(self, key: int) -> str:
        if key < self.instances:
            return self.instance_streams[key]
        return f"{self.prefix}ctl:{key - self.instances}"

    def alive(self, worker: int) -> str:
        return f"{self.prefix}alive:{worker}"


def lost_error(target: RedisTarget, exc: BaseException) -> BaseException:
    """A Redis failure as a clear :class:`TransportError`; anything else unchanged."""
    import redis

    if not isinstance(exc, redis.RedisError):
        return exc
    text = str(exc)
    if "NOGROUP" in text or "NOSCRIPT" in text:
        return TransportError(
            f"the run's queues are gone from Redis at {target.where}: was the server restarted or "
            f"flushed? ({text})"
        )
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return TransportError(f"lost the connection to Redis at {target.where}: {text}")
    return TransportError(f"Redis at {target.where} failed: {type(exc).__name__}: {text}")


def entries(reply: Any) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
    """``(stream, id, fields)`` of an ``XREAD``/``XREADGROUP`` reply (RESP2 or RESP3 shape)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    found = []
    for stream, entries in pairs:
        name = stream.decode() if isinstance(stream, bytes) else stream
        for entry in entries or ():
            if entry and entry[1] is not None:
                found.append((name, entry[0], dict(entry[1])))
    return found
