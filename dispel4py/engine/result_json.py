"""A run result as JSON-ready data: the ``--stats-json`` and ``--output-json`` documents and
``RunResult.to_dict()``. The schema is documented in ``docs/observability.md``; its version
is ``SCHEMA`` and grows only by adding fields.

**JSON for any item.** Outputs may hold anything a PE wrote. ``jsonable`` keeps what JSON
holds (``None``, ``bool``, ``int``, finite ``float``, ``str``, lists, tuples as lists, dicts
with string keys), turns numpy scalars and arrays into numbers and lists, keys that are
numbers, ``bool`` or ``None`` into the strings JSON itself would make of them, and everything
else into its ``repr`` (a set, bytes, ``nan``, a ``datetime``, any other object; other keys).
So a JSON file is always written, and a reader can tell a fallback by its type being a
string where the item was not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # result.py imports this module: the type only, for the annotations
    from dispel4py.engine.result import RunResult

__all__ = ["SCHEMA", "jsonable", "outputs_dict", "stats_dict"]

SCHEMA = "dispel4py.stats/1"
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


def stats_dict(result: RunResult) -> dict[str, Any]:
    """The ``--stats-json`` document (without outputs)."""
    per_pe = result.per_pe()
    elapsed = result.elapsed_s
    pes = {}
    for pe, row in per_pe.items():
        count = row["instances"]  # copies: a shared PE counts the workers that ran it
        pes[pe] = {
            "instances": count,
            "items_in": row["items_in"],
            "items_out": row["items_out"],
            "busy_s": round(row["busy_s"], 6),
            "busy_share": round(row["busy_s"] / max(1, count) / elapsed, 4) if elapsed > 0 else 0.0,
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
        "hosts_timeline": [[t, dict(hosts)] for t, hosts in result.hosts_timeline],
        "bottleneck": result.bottleneck,
    }


def outputs_dict(outputs: Mapping[str, Any]) -> Any:
    """The ``--output-json`` document: ``{pe_id: {output: [items]}}`` as JSON-ready data."""
    return jsonable(dict(outputs))
