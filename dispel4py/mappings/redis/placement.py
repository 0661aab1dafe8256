"""Placement by capability on the driver's side: a run whose needs no worker meets says so.

A PE that requires tags (``pe.requires = {"gpu"}``, ``fleet.py``) runs only on workers that
offer them: joined workers of agents started with ``--tags``. The driver's own workers offer
no tags, so a pinned instance of such a PE must not be laid on one of them (a usage error
at the start, naming the PE and the tags), and a run in which no worker that offers a PE's
tags has joined within :data:`NEEDS_GRACE_S` fails (exit 1), naming the PE and the tags,
instead of waiting silently for a worker that may never come.
"""

from __future__ import annotations

import time
from typing import Any

from dispel4py.errors import Dispel4PyError, UsageError
from dispel4py.mappings.redis.fleet import can_run, requirements

__all__ = ["NEEDS_GRACE_S", "NeedsUnmet", "NeedsWatch", "check_local_slots"]

NEEDS_GRACE_S = 3.0


class NeedsUnmet(Dispel4PyError):
    """No worker of the run offers the tags a PE requires."""


def check_local_slots(plan: Any, local: int) -> None:
    """A pinned instance of a PE that requires tags must be hosted by an agent that offers
    them, never by one of the driver's own ``local`` workers (which offer none)."""
    needs = requirements(plan)
    for iid, pe_id in enumerate(plan.placement.pe_of):
        worker = plan.worker_of(iid)
        if pe_id in needs and 0 <= worker < local:
            tags = ",".join(sorted(needs[pe_id]))
            raise UsageError(
                f"PE {pe_id} requires the tags {tags} and is pinned (stateful): its instance would run on "
                f"the driver's worker {worker}, which offers no tags; start the driver with -n 0 and an "
                f"agent that offers them (dispel4py worker --serve --tags {tags})"
            )


class NeedsWatch:
    """Called on the driver's tick: fails the run when a PE that has not ended requires tags
    that no live worker offers, for ``grace_s`` in a row."""

    def __init__(self, plan: Any, pool: Any, coordinator: Any, grace_s: float = NEEDS_GRACE_S) -> None:
        self.needs = requirements(plan)
        self.pool, self.coordinator, self.grace_s = pool, coordinator, grace_s
        self.run_id = pool.queues.names.run_id
        self.unmet_since: dict[str, float] = {}

    def tick(self) -> None:
        if not self.needs:
            return
        now = time.monotonic()
        offered = [self.pool.offers[w].tags for w in self.pool.remote if w in self.pool.offers]
        for pe_id, tags in self.needs.items():
            if pe_id in self.coordinator.ended or any(can_run(tags, o) for o in offered):
                self.unmet_since.pop(pe_id, None)
                continue
            since = self.unmet_since.setdefault(pe_id, now)
            if now - since >= self.grace_s:
                wanted = ",".join(sorted(tags))
                raise NeedsUnmet(
                    f"PE {pe_id} requires the tags {wanted}, and no worker of run {self.run_id} offers "
                    f"them (waited {self.grace_s:g} s): start an agent on a host that has them with "
                    f"dispel4py worker --serve --tags {wanted}"
                )
