"""Reading provenance records in tests: the lineage of a run up to its ids (which differ
with instances, workers and processes), so that runs on different mappings compare."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


def records(folder: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(folder.glob("bulk_*")):
        found.extend(json.loads(path.read_text()))
    return found


def lineage_of(folder: Path) -> dict[str, Any]:
    """``{"streams": Counter of (pe, port, sources)}`` where ``sources`` is the frozenset of
    source values (``metadata i``) a stream derives from, through any chain (states and
    folded flows included); plus the metadata of each written stream, for value checks."""
    recs = [r for r in records(folder) if r["type"] == "lineage"]
    by_id = {s["id"]: (r, s) for r in recs for s in r["streams"]}
    memo: dict[str, frozenset] = {}

    def sources(stream_id: str) -> frozenset:
        if stream_id in memo:
            return memo[stream_id]
        record, stream = by_id[stream_id]  # a KeyError: a derivation with no record
        if not record["derivationIds"]:
            found = (
                frozenset([stream["content"][0].get("i")]) if stream["port"] != "_d4p_state" else frozenset()
            )
        else:
            found = frozenset().union(*(sources(d["DerivedFromDatasetID"]) for d in record["derivationIds"]))
        memo[stream_id] = found
        return found

    streams: Counter = Counter()
    written = []
    for record, stream in by_id.values():
        if stream["port"] == "_d4p_state":
            continue
        src = sources(stream["id"])
        streams[(record["actedOnBehalfOf"], stream["port"], src)] += 1
        written.append((record["actedOnBehalfOf"], stream["content"], src))
    return {"streams": streams, "written": written}
