"""A finished run described: the layout (``--plan``, ``-vv``) and the bottleneck hint.

Everything here is computed from the plan and a :class:`~dispel4py.engine.result.RunResult`
after the run: nothing costs anything while PEs run. (The run as JSON is
:mod:`dispel4py.engine.result_json`.)

**The bottleneck.** A run is bounded by a PE when its instances are busy most of the run
(``BUSY_SHARE`` of the elapsed time on average) while it has fewer instances than there are
workers and the workers as a whole are mostly idle (``IDLE_SHARE``). The hint says which PE
and what to do: more instances (``numprocesses``) or a dynamic mapping, whose workers all
take that PE's items; for a PE that must run as one instance (a source, ``single``,
``stateful``, an input grouped ``'all'``/``'global'``) only making it cheaper helps.
"""

from __future__ import annotations

from typing import Any

from dispel4py.engine.plan import Plan
from dispel4py.engine.result import RunResult

__all__ = [
    "BUSY_SHARE",
    "IDLE_SHARE",
    "layout_of",
    "find_bottleneck",
    "bottleneck_line",
    "describe_layout",
]

BUSY_SHARE = 0.5  # a PE whose instances are busy at least this share of the run bounds it
IDLE_SHARE = 0.75  # ... if the workers together are busy less than this share of the run
_MIN_BUSY_S = 0.2  # an instance busy for less says nothing: start-up dominates such runs


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
    copies = {pe: row["instances"] for pe, row in per_pe.items()}
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
