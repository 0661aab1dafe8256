"""What the driver and the standing agents (``dispel4py worker --serve``) share about a fleet.

* **Run announcements.** A driver that starts a run publishes its id on the channel
  :data:`RUNS_CHANNEL`, so that standing agents join within a round trip instead of
  polling (they wait in a blocking read). The message is only a hint: an agent joins a run
  only after checking its signed metadata, so a stranger's message costs a lookup, nothing
  more; and an agent that was away when a run started finds it by its ``info`` key.
* **Capabilities (tags).** A PE says what a worker must offer to run it with the attribute
  ``requires`` (:data:`REQUIRES`): a set of tags, e.g. ``pe.requires = {"gpu"}``. An agent
  offers tags with ``--tags gpu,big-mem``. A worker takes a PE's shared tasks only if it
  offers every tag the PE requires (:func:`can_run`).
* **What a joined worker tells the driver** in its ``hello`` (:class:`WorkerOffer`): its
  agent, its tags and the agent's ``--min``/``--max``, for placement and fleet scaling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dispel4py.errors import UsageError

__all__ = [
    "FleetSize",
    "NOT_MY_SLOT",
    "REQUIRES",
    "RUNS_CHANNEL",
    "WorkerOffer",
    "announce_run",
    "can_run",
    "parse_tags",
    "requirements",
    "requires_of",
    "slot_check",
]

RUNS_CHANNEL = "d4py-fleet:runs"
REQUIRES = "requires"  # the PE attribute naming the tags a worker must offer
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class WorkerOffer:
    """A joined worker's agent and what it offers (plain data: travels in ``hello``)."""

    agent: str = ""
    host: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)
    minimum: int = 0
    maximum: int = 1


def parse_tags(text: str | None, flag: str = "--tags") -> frozenset[str]:
    """``"gpu,big-mem"`` -> ``{"gpu", "big-mem"}``; a malformed list is a usage error naming
    ``flag``. Tags: letters, digits, ``_ . -``, starting with a letter or digit."""
    if text is None:
        return frozenset()
    tags = [t.strip() for t in text.split(",")]
    bad = [t for t in tags if not _TAG.fullmatch(t)]
    if bad:
        raise UsageError(
            f"{flag}: {bad[0]!r} is not a tag (a comma-separated list of names of letters, digits, "
            f"'_', '.', '-', e.g. gpu,big-mem; got {text!r})"
        )
    return frozenset(tags)


def requires_of(pe: Any) -> frozenset[str]:
    """The tags ``pe`` requires (its ``requires`` attribute); a malformed one is a usage
    error naming the PE."""
    wanted = getattr(pe, REQUIRES, None)
    if not wanted:
        return frozenset()
    name = getattr(pe, "id", None) or type(pe).__name__
    if isinstance(wanted, str) or not isinstance(wanted, Iterable):
        raise UsageError(f"PE {name}: {REQUIRES} must be a set of tags, e.g. {{'gpu'}} (got {wanted!r})")
    tags = frozenset(wanted)
    bad = [t for t in tags if not isinstance(t, str) or not _TAG.fullmatch(t)]
    if bad:
        raise UsageError(f"PE {name}: {bad[0]!r} in {REQUIRES} is not a tag (letters, digits, '_', '.', '-')")
    return tags


def requirements(plan: Any) -> dict[str, frozenset[str]]:
    """PE id -> the tags it requires, for the PEs of ``plan`` that require any."""
    found = {pe_id: requires_of(pe) for pe_id, pe in plan.pes.items()}
    return {pe_id: tags for pe_id, tags in found.items() if tags}


def can_run(needed: frozenset[str], offered: frozenset[str]) -> bool:
    return needed <= offered


def announce_run(client: Any, run_id: str) -> None:
    """Tell the standing agents that run ``run_id`` has started (a hint; see the module)."""
    client.publish(RUNS_CHANNEL, run_id)


NOT_MY_SLOT = -3
# Put before REGISTER (scripts.py), whose ARGV it extends with ARGV[7], the ",slot," list of
# the plan's worker slots this worker can host: the next id, if it is a slot of the plan that
# is not in the list, is not taken (NOT_MY_SLOT, the counter unchanged).
_SLOT_CHECK = """
local nxt = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('EXISTS', KEYS[1]) == 1 and nxt < tonumber(ARGV[6])
    and not string.find(ARGV[7], ',' .. nxt .. ',', 1, true) then
  return NOT_MY_SLOT
end
""".replace("NOT_MY_SLOT", str(NOT_MY_SLOT))


def slot_check(plan: Any, offers: frozenset[str]) -> tuple[str, str]:
    """``(script prefix, ARGV[7])`` for ``REGISTER``: with no pinned instance that requires
    tags, no check at all; else the slots whose pinned instances need only what ``offers``
    has (a worker never takes a slot it cannot serve)."""
    needs = requirements(plan)
    if not any(_slot_needs(plan, w, needs) for w in range(plan.num_workers)):
        return "", ""
    slots = [w for w in range(plan.num_workers) if can_run(_slot_needs(plan, w, needs), offers)]
    return _SLOT_CHECK, "," + ",".join(map(str, slots)) + ","


def _slot_needs(plan: Any, worker: int, needs: dict[str, frozenset[str]]) -> frozenset[str]:
    wanted: frozenset[str] = frozenset()
    for iid in plan.hosted(worker):
        wanted |= needs.get(plan.pe_of(iid), frozenset())
    return wanted


class FleetSize:
    """On the driver's tick: tells the workers how many workers the run has once workers
    from other hosts make it more than the plan's slots (``-n 0`` plans one). A writer helps
    (or waits) once a queue holds ``--credits`` tasks per worker; counting only the plan's
    slots would cap a fleet's queues at a few tasks. A command, not a read in the writer:
    the write path stays as it is."""

    def __init__(self, plan: Any, pool: Any, queues: Any) -> None:
        self.slots, self.pool, self.queues = plan.num_workers, pool, queues
        self.told: dict[int, int] = {}  # worker -> the size it was told

    def tick(self) -> None:
        pool = self.pool
        live = [w for w in range(pool.local) if w not in pool.lost] + sorted(pool.remote)
        size = len(live)
        if size <= self.slots and not self.told:
            return
        for worker in live:
            if self.told.get(worker) != size:
                self.queues.command(worker, ("fleet", size))
                self.told[worker] = size
