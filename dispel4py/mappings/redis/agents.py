"""The fleet's registry: what each standing worker agent (``dispel4py worker --serve``) says
about itself, for ``dispel4py status`` and for the drivers that place work on the fleet.

Each agent keeps one key, ``d4py-agent:<agent id>``, holding a signed JSON record of its host,
tags, process counts and the runs it serves. The agent rewrites it at least every
``AGENT_TTL_MS / 4`` and the key expires ``AGENT_TTL_MS`` after the last write, so an agent
that is gone (even by SIGKILL of its whole process tree) leaves the registry by itself.

The record is signed with the agents' key file (the key the runs are signed with) under a
scope of its own, and bound to its key name: a record copied to another agent's key, or
written by whoever can reach the server without the key, is counted as forged and never
shown as an agent. JSON, not pickle: the reader may be a monitoring tool that must never run
what the server holds.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from dispel4py.dynamic.signing import MAC_SIZE, Forged, Signer

__all__ = [
    "AGENT_PREFIX",
    "AGENT_TTL_MS",
    "AgentRecord",
    "new_agent_id",
    "publish_agent",
    "read_agents",
    "remove_agent",
]

AGENT_PREFIX = "d4py-agent:"  # not "d4py:…": a run's keys are d4py:<run id>:…
AGENT_TTL_MS = 10_000
_SCOPE = b"agent"
_SCAN_COUNT = 500


@dataclass
class AgentRecord:
    """One agent, as it last described itself. ``active``/``parked``: its worker processes
    taking tasks and waiting to be woken; ``runs``: the ids of the runs it serves now;
    ``served``: how many runs it has served since it started. Times are Unix seconds."""

    agent_id: str
    host: str
    pid: int
    tags: list[str] = field(default_factory=list)
    min: int = 0
    max: int = 1
    active: int = 0
    parked: int = 0
    runs: list[str] = field(default_factory=list)
    served: int = 0
    started: float = 0.0
    updated: float = 0.0

    @property
    def key(self) -> str:
        return AGENT_PREFIX + self.agent_id


def new_agent_id() -> str:
    """``host:pid:random``: unique on the server even when pids repeat across hosts."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def publish_agent(client: Any, signer: Signer, record: AgentRecord, ttl_ms: int = AGENT_TTL_MS) -> None:
    """Write (or refresh) ``record`` under its key, signed, expiring after ``ttl_ms``."""
    record.updated = time.time()
    data = json.dumps(asdict(record), sort_keys=True).encode()
    mac = signer.mac(_SCOPE, data, record.key.encode())
    client.set(record.key, mac + data, px=ttl_ms)


def remove_agent(client: Any, record: AgentRecord) -> None:
    """An agent leaving cleanly removes its record at once (else it expires)."""
    client.delete(record.key)


def read_agents(client: Any, signer: Signer) -> tuple[list[AgentRecord], int]:
    """Every agent whose record is signed with ``signer``'s key, sorted by host then id, and
    how many records under the prefix were not (forged, or another key's)."""
    keys = sorted(client.scan_iter(match=AGENT_PREFIX + "*", count=_SCAN_COUNT))
    values = client.mget(keys) if keys else []
    agents: list[AgentRecord] = []
    forged = 0
    for key, value in zip(keys, values):
        record = _opened(signer, _text(key), value)
        if record is None:
            forged += value is not None  # None: it expired between the scan and the read
        else:
            agents.append(record)
    agents.sort(key=lambda a: (a.host, a.agent_id))
    return agents, forged


def _opened(signer: Signer, key: str, value: bytes | None) -> AgentRecord | None:
    if value is None or len(value) <= MAC_SIZE:
        return None
    mac, data = value[:MAC_SIZE], value[MAC_SIZE:]
    try:
        signer.check(_SCOPE, mac, data, key.encode())
        record = AgentRecord(**json.loads(data))
    except (Forged, ValueError, TypeError):  # not signed with this key, or not a record
        return None
    return record if record.key == key else None


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
