"""What a run returns: outputs of the collected ports and statistics per PE instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["InstanceStats", "RunResult"]


@dataclass
class InstanceStats:
    pe_id: str
    instance: int  # the instance id, which is also the PE's ``rank``
    worker: int
    calls: int = 0  # process() invocations ("Processed N iterations.")
    items_out: int = 0
    busy_s: float = 0.0  # time inside pre/process/postprocess, not waiting
    copies: int = 1  # dynamic mappings: workers that ran a copy of this (shared) instance; worker -1 if > 1


@dataclass
class RunResult:
    """Outputs ``{pe_id: {output: [items]}}`` and per-instance stats of one run."""

    outputs: dict[str, dict[str, list[Any]]]
    stats: list[InstanceStats] = field(default_factory=list)
    mapping: str = "simple"
    elapsed_s: float = 0.0
    processes: str = ""  # the original's "Processes: {...}" layout line
    workers_timeline: list[tuple[float, int]] = field(default_factory=list)  # autoscaling: (s, active)

    def per_pe(self) -> dict[str, dict[str, Any]]:
        """Totals per PE: instances, items in/out, busy seconds."""
        table: dict[str, dict[str, Any]] = {}
        for s in self.stats:
            row = table.setdefault(s.pe_id, {"instances": 0, "items_in": 0, "items_out": 0, "busy_s": 0.0})
            row["instances"] += 1
            row["items_in"] += s.calls
            row["items_out"] += s.items_out
            row["busy_s"] += s.busy_s
        return table

    def items(self, pe_id: str, output: str = "output") -> list[Any]:
        """The items collected from ``pe_id``'s ``output`` (empty if none)."""
        return self.outputs.get(pe_id, {}).get(output, [])
