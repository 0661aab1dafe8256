"""A finished run as data: JSON-ready outputs and stats, the bottleneck hint, the layout.

Everything here is computed from a :class:`~dispel4py.result.RunResult` (or, for the
layout and the bottleneck, from the plan), after the run: nothing costs anything while
PEs run. The JSON schema is documented in ``docs/observability.md``; its version is
``SCHEMA`` and grows only by adding fields.

**JSON for any item.** Outputs may hold anything a PE wrote. ``jsonable`` keeps what JSON
holds (``None``, ``bool``, ``int``, finite ``float``, ``str``, lists, tuples as lists, dicts
with string keys), turns numpy scalars and arrays into numbers and lists, keys that are
numbers, ``bool`` or ``None`` into the strings JSON itself would make of them, and everything
else into its ``repr`` (a set, bytes, ``nan``, a ``datetime``, any other object; other keys).
So a JSON file is always written, and a reader can tell a fallback by its type being a
string where the item was not.

**The bottleneck.** A run is bounded by a PE when its instances are busy most of the run
(``BUSY_SHARE`` of the elapsed time on average) while it has fewer instances than there are
workers and the workers as a whole are mostly idle (``IDLE_SHARE``). The hint says which PE
and what to do: more instances (``numprocesses``) or a dynamic mapping, whose workers all
take that PE's items; for a PE that must run as one instance (a source, ``single``,
``stateful``, an input grouped ``'all'``/``'global'``) only making it cheaper helps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispel4py.plan import Plan
    from dispel4py.result import RunResult

__all__ = [
    "SCHEMA",
    "BUSY_SHARE",
    "IDLE_SHARE",
    "jsonable",
    "stats_dict",
    "layout_of",
    "find_bottleneck",
    "bottleneck_line",
    "describe_layout",
]

SCHEMA = "dispel4py.stats/1"
BUSY_SHARE = 0.5  # a PE whose instances are busy at least this share of the run bounds it
IDLE_SHARE = 0.75  # ... if the workers together are busy less than this share of the run
_MIN_BUSY_S = 0.2  # an instance busy for less says nothing: start-up dominates such runs
_SCALARS = (str, int, type(None))


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as data ``json.dumps`` writes as standard JSON (see the module docstring)."""
    if isinstance(value, _SCALARS):
        return value if type(value) in (str, int, bool, type(None)) else _subclass(value)
    if isinstance(value, float):
        return value if math.isfinite(value) and type(value) is float else _float(value)
    if depth > 100:  # a structure that deep (or a cycle) is not data
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_key(k): jsonable(v, depth + 1) for k, v in value.items()}
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist(), depth + 1)
    return repr(value)


def _subclass(value: Any) -> Any:
    """An enum or other subclass of str/int: its plain value (bool stays bool)."""
    if isinstance(value, bool):
        return bool(value)
    return int(value) if isinstance(value, int) else str.__str__(value)


def _float(value: float) -> Any:
    return float(value) if math.isfinite(value) else repr(float(value))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    if isinstance(key, bool) or key is None:
        return "true" if key is True else "false" if key is False else "null"
    if isinstance(key, (int, float)):
        return repr(float(key)) if isinstance(key, float) else str(int(key))
    return repr(key)


def layout_of(plan: Plan) -> dict[str, list[tuple[int, int]]]:
    """``{pe_id: [(instance id, worker), ...]}``; worker -1: a dynamic mapping's shared PE
    (any worker runs it)."""
    placement = plan.placement
    return {pe: [(i, placement.worker_of[i]) for i in iids] for pe, iids in plan.instances.items()}


def describe_layout(plan: Plan, mapping: str) -> str:
    """The layout as ``--plan`` prints it: one line per PE, then one per worker."""
    layout = layout_of(plan)
    placement = plan.placement
    kind = "partitioned" if placement.partitioned else "one instance per worker"
    if any(w < 0 for pairs in layout.values() for _, w in pairs):
        kind = "dynamic: shared PEs on any worker, the others pinned"
    width = max((len(pe) for pe in layout), default=2)
    word = "rank" if "mpi" in mapping else "worker"  # an MPI rank is the worker
    lines = [f"{mapping}: {plan.num_workers} {word}{'s' if plan.num_workers != 1 else ''}, {kind}"]
    lines.append(f"{'PE'.ljust(width)}  instances  {word}s")
    for pe, pairs in layout.items():
        workers = sorted({w for _, w in pairs})
        where = "any (shared)" if workers == [-1] else ", ".join(map(str, workers))
        lines.append(f"{pe.ljust(width)}  {len(pairs):>9}  {where}")
    for worker in range(plan.num_workers):
        hosted = [f"{plan.pe_of(i)}[{i}]" for i in plan.hosted(worker)]
        lines.append(f"{word} {worker}: {', '.join(hosted) or '(shared work only)'}")
    lines.append(plan.describe())
    return "\n".join(lines)


def _fixed_reason(plan: Plan, pe_id: str) -> str | None:
    """Why ``pe_id`` runs as exactly its instances whatever the workers, or None."""
    pe = plan.pes[pe_id]
    incoming = [e for e in plan.edges if e.dst == pe_id]
    if not incoming:
        return "it is a source"
    if getattr(pe, "single", False) or getattr(pe, "stateful", False):
        return "it is marked single/stateful"
    for e in incoming:
        if e.grouping.kind in ("all", "global"):
            return f"its input '{e.inp}' is grouped '{e.grouping.kind}'"
    return None


def find_bottleneck(plan: Plan, result: RunResult) -> dict[str, Any] | None:
    """The PE bounding the run, with a hint, or None (see the module docstring)."""
    elapsed, workers = result.elapsed_s, plan.num_workers
    if workers < 2 or elapsed <= 0:
        return None
    per_pe = result.per_pe()
    copies = {pe: 0 for pe in per_pe}
    for s in result.stats:
        copies[s.pe_id] += s.copies
    total_busy = sum(row["busy_s"] for row in per_pe.values())
    if total_busy >= IDLE_SHARE * workers * elapsed:
        return None  # the workers are busy: more instances would not run sooner
    best = max(per_pe, key=lambda pe: per_pe[pe]["busy_s"] / max(1, copies[pe]), default=None)
    if best is None:
        return None
    row, count = per_pe[best], max(1, copies[best])
    share = row["busy_s"] / count / elapsed
    if share < BUSY_SHARE or count >= workers or row["busy_s"] / count < _MIN_BUSY_S:
        return None
    shared = any(plan.worker_of(i) < 0 for i in plan.instances[best])
    if shared:
        return None  # a dynamic mapping already spreads it over every worker that is free
    return {
        "pe": best,
        "busy_s": round(row["busy_s"], 6),
        "elapsed_s": round(elapsed, 6),
        "busy_share": round(share, 4),
        "instances": count,
        "workers": workers,
        "hint": _hint(plan, best, count, workers, share, elapsed),
    }


def _hint(plan: Plan, pe: str, count: int, workers: int, share: float, elapsed: float) -> str:
    busy = f"busy {share:.0%} of the {elapsed:.2f} s run"
    on = f"on {count} instance{'s' if count != 1 else ''} of {workers} workers"
    reason = _fixed_reason(plan, pe)
    if reason is not None:
        return (
            f"bottleneck: {pe} was {busy} {on}; it runs as one instance ({reason}), so more workers "
            "cannot help: make its work cheaper"
        )
    return (
        f"bottleneck: {pe} was {busy} {on}; give it more instances (set its numprocesses to {workers}) "
        "or run on dyn_multi, where every free worker takes its items"
    )


def bottleneck_line(result: RunResult) -> str | None:
    return None if result.bottleneck is None else str(result.bottleneck["hint"])


def stats_dict(result: RunResult) -> dict[str, Any]:
    """The ``--stats-json`` document (without outputs)."""
    per_pe = result.per_pe()
    elapsed = result.elapsed_s
    pes = {}
    for pe, row in per_pe.items():
        count = len(result.layout.get(pe, ())) or row["instances"]
        pes[pe] = {
            "instances": count,
            "items_in": row["items_in"],
            "items_out": row["items_out"],
            "busy_s": round(row["busy_s"], 6),
            "busy_share": round(row["busy_s"] / count / elapsed, 4) if elapsed > 0 else 0.0,
        }
    return {
        "schema": SCHEMA,
        "mapping": result.mapping,
        "workers": result.workers,
        "elapsed_s": round(elapsed, 6),
        "pes": pes,
        "instances": [
            {
                "pe": s.pe_id,
                "instance": s.instance,
                "worker": s.worker,
                "items_in": s.calls,
                "items_out": s.items_out,
                "busy_s": round(s.busy_s, 6),
                "copies": s.copies,
            }
            for s in result.stats
        ],
        "layout": {
            pe: [{"instance": i, "worker": w} for i, w in pairs] for pe, pairs in result.layout.items()
        },
        "processes": result.processes,
        "workers_timeline": [[t, n] for t, n in result.workers_timeline],
        "bottleneck": result.bottleneck,
    }


def outputs_dict(outputs: Mapping[str, Any]) -> Any:
    """The ``--output-json`` document: ``{pe_id: {output: [items]}}`` as JSON-ready data."""
    return jsonable(dict(outputs))
