"""What a run returns: outputs of the collected ports and statistics per PE instance.

Outputs and results are looked up by PE id or by the PE object itself; an id that is not a
PE of the run is a ``KeyError`` naming the PEs that are (a typo must not read as "no
results"). ``RunResult.to_dict()`` is the same data as plain JSON-ready values (schema in
``docs/observability.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispel4py.engine.result_json import jsonable, stats_dict
from dispel4py.errors import did_you_mean

__all__ = ["InstanceStats", "Outputs", "RunResult"]


def _pe_key(pe: Any) -> Any:
    """A PE object's id; anything else unchanged."""
    return pe if isinstance(pe, str) else getattr(pe, "id", pe)


def _unknown_pe(key: Any, known: list[str]) -> KeyError:
    hint = did_you_mean(str(key), known)
    return KeyError(f"no PE {key!r} in this run{hint}; its PEs are: {', '.join(known) or '(none)'}")


class Outputs(dict):
    """``{pe_id: {output: [items]}}``, a plain dict that also takes PE objects as keys.

    A PE of the run that wrote no collected item reads as ``{}``; any other key is a
    ``KeyError`` naming the run's PEs. ``pe_ids`` lists every PE of the run."""

    def __init__(self, data: dict[str, dict[str, list[Any]]] | None = None, pe_ids: list[str] | None = None):
        super().__init__(data or {})
        self.pe_ids = list(pe_ids) if pe_ids is not None else list(self)

    def __getitem__(self, pe: Any) -> dict[str, list[Any]]:
        key = _pe_key(pe)
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        if key in self.pe_ids:
            return {}
        raise _unknown_pe(key, self.pe_ids)

    def __contains__(self, pe: object) -> bool:
        return dict.__contains__(self, _pe_key(pe))

    def get(self, pe: Any, default: Any = None) -> Any:
        return dict.get(self, _pe_key(pe), default)


@dataclass
class InstanceStats:
    pe_id: str
    instance: int  # the instance id, which is also the PE's ``rank``
    worker: int
    calls: int = 0  # process() invocations ("Processed N iterations.")
    items_out: int = 0
    busy_s: float = 0.0  # time inside pre/process/postprocess, not waiting
    copies: int = 1  # dynamic mappings: workers that ran a copy of this (shared) instance; worker -1 if > 1
    # timed_* mappings only: seconds of each process() call, in order (None when not timed)
    iteration_s: list[float] | None = field(default=None, repr=False)


@dataclass
class RunResult:
    """Outputs ``{pe_id: {output: [items]}}`` and per-instance stats of one run."""

    outputs: dict[str, dict[str, list[Any]]]
    stats: list[InstanceStats] = field(default_factory=list)
    mapping: str = "simple"
    elapsed_s: float = 0.0
    processes: str = ""  # the original's "Processes: {...}" layout line
    workers_timeline: list[tuple[float, int]] = field(default_factory=list)  # autoscaling: (s, active)
    # fleet autoscaling (dyn_auto_redis): (s, {host: active}) at the start and each change
    hosts_timeline: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    workers: int = 0  # workers (processes, ranks) the plan used
    layout: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # PE id -> (instance, worker)
    bottleneck: dict[str, Any] | None = None  # see dispel4py.observe.report.find_bottleneck

    def __getitem__(self, pe: Any) -> dict[str, list[Any]]:
        """The outputs of ``pe`` (a PE object or id): ``{output: [items]}``."""
        return _as_outputs(self.outputs, self.layout)[pe]

    def per_pe(self) -> dict[str, dict[str, Any]]:
        """Totals per PE: instances, items in/out, busy seconds.

        ``instances`` counts the copies: on a dynamic mapping a shared PE is one instance run
        by every worker that took its tasks, and its busy seconds add up over those workers,
        so they are its instances (``docs/observability.md``); elsewhere ``copies`` is 1."""
        table: dict[str, dict[str, Any]] = {}
        for s in self.stats:
            row = table.setdefault(s.pe_id, {"instances": 0, "items_in": 0, "items_out": 0, "busy_s": 0.0})
            row["instances"] += s.copies
            row["items_in"] += s.calls
            row["items_out"] += s.items_out
            row["busy_s"] += s.busy_s
        return table

    def items(self, pe: Any, output: str = "output") -> list[Any]:
        """The items collected from ``output`` of ``pe`` (a PE object or id; empty if none)."""
        return self[pe].get(output, [])

    def to_dict(self) -> dict[str, Any]:
        """Everything about the run as JSON-ready data: outputs (items JSON cannot hold as
        their ``repr``) and the stats of ``--stats-json``."""
        return {"outputs": jsonable(self.outputs), **stats_dict(self)}


def _as_outputs(outputs: dict[str, dict[str, list[Any]]], layout: dict[str, Any]) -> Outputs:
    if isinstance(outputs, Outputs):
        return outputs
    return Outputs(outputs, list(layout) or list(outputs))
