"""Names and plain helpers shared by the Redis mappings' driver and workers.

Every key of a run lives under ``d4py:<run id>:`` (:class:`RunNames`); ``GROUP`` is the
consumer group on every stream. :func:`entries` reads ``XREAD``/``XREADGROUP`` replies,
:func:`lost_error` turns a Redis failure into a clear :class:`TransportError`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from dispel4py.engine.plan import Plan
from dispel4py.errors import TransportError
from dispel4py.mappings.redis.server import RedisTarget

__all__ = [
    "BLOCK_MS",
    "DRIVER_TTL_MS",
    "GROUP",
    "SOCKET_TIMEOUT_S",
    "TTL_S",
    "RunNames",
    "Tampered",
    "entries",
    "lost_error",
    "redis_failures_are_transport_errors",
]

GROUP = "d4py"
BLOCK_MS = 1000  # longest single wait on the server; socket timeouts are longer
# a server that does not answer (CLIENT PAUSE, a stopped or swapping redis-server) is an
# error this long after a request: the longest wait we ask for, plus the 2 s that the
# start-up check gives a server to answer a PING
SOCKET_TIMEOUT_S = BLOCK_MS / 1000 + 2
DRIVER_TTL_MS = 5000  # the driver's liveness key expires this long after the driver is gone
TTL_S = 600  # every key of a run expires this long after its driver stopped renewing it


class Tampered(TransportError):
    """Run state on the server that only the run's processes write was changed by someone
    else: the run stops, naming the key, rather than hang or give a wrong result."""


class RunNames:
    """The key names of one run (plain data: travels to workers)."""

    def __init__(self, run_id: str, plan: Plan) -> None:
        self.run_id = run_id
        self.prefix = p = f"d4py:{run_id}:"
        placement = plan.placement
        self.instances = len(placement.pe_of)
        self.instance_streams = [f"{p}q:{pe}:{placement.index_of[i]}" for i, pe in enumerate(placement.pe_of)]
        self.info, self.used, self.reports = p + "info", p + "used", p + "reports"
        self.dead, self.workers, self.driver = p + "dead", p + "workers", p + "driver"
        self.sent = p + "sent"  # reports each worker's commits wrote (audit.py)

    def stream(self, key: int) -> str:
        if key < self.instances:
            return self.instance_streams[key]
        return f"{self.prefix}ctl:{key - self.instances}"

    def alive(self, worker: int) -> str:
        return f"{self.prefix}alive:{worker}"

    def stage(self, sender: bytes, serial: int) -> str:
        """The staging stream of one task attempt that spilled its outputs early."""
        return f"{self.prefix}stage:{sender.decode()}:{serial}"


def lost_error(target: RedisTarget, exc: BaseException) -> BaseException:
    """A Redis failure as a clear :class:`TransportError`; anything else unchanged."""
    import redis

    if not isinstance(exc, redis.RedisError):
        return exc
    text = str(exc)
    for tag in ("NOGROUP", "NOSCRIPT"):
        if tag in text:
            detail = text[text.index(tag) :].rstrip(")")
            return TransportError(
                f"the run's queues are gone from Redis at {target.where}: was the server restarted "
                f"or flushed? ({detail})"
            )
    if isinstance(exc, redis.TimeoutError):
        return TransportError(
            f"Redis at {target.where} did not answer within {SOCKET_TIMEOUT_S:g} s (paused, stopped or "
            f"overloaded?): {text}"
        )
    if isinstance(exc, redis.ConnectionError):
        return TransportError(f"lost the connection to Redis at {target.where}: {text}")
    return TransportError(f"Redis at {target.where} failed: {type(exc).__name__}: {text}")


_F = TypeVar("_F", bound=Callable[..., Any])


def redis_failures_are_transport_errors(method: _F) -> _F:
    """A method of the queues that PE code reaches (a write, a wait for room, a nested take):
    a Redis failure in it is the transport's, never the PE's (no "PE … failed", no replay
    file): it leaves as :func:`lost_error`'s :class:`TransportError`."""

    @functools.wraps(method)
    def checked(self: Any, *args: Any) -> Any:
        try:
            return method(self, *args)
        except Exception as exc:
            error = lost_error(self.target, exc)
            if error is exc:
                raise
            raise error from exc

    return checked  # type: ignore[return-value]


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
