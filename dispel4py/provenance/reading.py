"""Reading a run's records back (``dispel4py prov``): the bulk files of a folder, and the
index of what each stream (an item written, or a state) derives from.

The folder may hold the files of every process of a run (copy the folders of remote Redis
workers into one) and of several runs: ``run_id`` picks one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dispel4py.errors import UsageError

__all__ = ["read_records", "LineageIndex", "Stream"]


def read_records(folder: str) -> Iterator[dict[str, Any]]:
    """Every record of the bulk files in ``folder``, file by file (a file at a time in memory)."""
    if not os.path.isdir(folder):
        raise UsageError(f"{folder}: not a folder of provenance records (--provenance-path of a run)")
    names = sorted(n for n in os.listdir(folder) if n.startswith("bulk_"))
    if not names:
        raise UsageError(f"{folder}: no provenance records (bulk_* files) there")
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as handle:
                records = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"{path}: not a provenance bulk file ({exc})") from exc
        yield from records if isinstance(records, list) else [records]


@dataclass
class Stream:
    """One stream of a lineage record: an item written (or a state), and its record."""

    id: str
    pe: str
    name: str
    port: str
    iteration: str
    iteration_index: int
    end_time: str
    derivations: list[dict[str, Any]]
    content: Any = None
    order: int = 0


@dataclass
class LineageIndex:
    streams: dict[str, Stream] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, folder: str, run_id: str | None = None) -> LineageIndex:
        index = cls()
        for record in read_records(folder):
            if run_id is not None and record.get("runId") != run_id:
                continue
            if record.get("type") == "workflow_run":
                index.runs.append(record)
            elif record.get("type") == "lineage":
                index._add(record)
        if run_id is None and len({r["runId"] for r in index.runs}) > 1:
            runs = ", ".join(sorted(r["runId"] for r in index.runs))
            raise UsageError(f"{folder} holds the records of several runs ({runs}); choose one with --run-id")
        return index

    def _add(self, record: dict[str, Any]) -> None:
        for stream in record.get("streams", []):
            self.streams[stream["id"]] = Stream(
                id=stream["id"],
                pe=record.get("actedOnBehalfOf", ""),
                name=record.get("name", ""),
                port=stream.get("port", ""),
                iteration=record.get("iterationId", ""),
                iteration_index=record.get("iterationIndex", 0),
                end_time=record.get("endTime", ""),
                derivations=record.get("derivationIds", []),
                content=stream.get("content"),
                order=len(self.streams),
            )

    def find(self, target: str) -> Stream:
        """A stream by id, or by ``PE:port:index`` (the index-th item that PE wrote on that
        port, in the order written: the order of the PE's results in ``Outputs:``)."""
        if target in self.streams:
            return self.streams[target]
        parts = target.rsplit(":", 2)
        if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
            raise UsageError(f"{target!r}: no such output id; give an output id or 'PE:port:index'")
        pe, port, index = parts[0], parts[1], int(parts[2])
        written = sorted(
            (s for s in self.streams.values() if (s.pe == pe or s.name == pe) and s.port == port),
            key=lambda s: (s.end_time, s.order),
        )
        if not written:
            known = sorted({f"{s.pe}:{s.port}" for s in self.streams.values() if not s.port.startswith("_")})
            raise UsageError(f"{pe}:{port}: no item written there; outputs recorded: {', '.join(known)}")
        if not -len(written) <= index < len(written):
            raise UsageError(f"{pe}:{port}:{index}: {pe} wrote {len(written)} item(s) on {port}")
        return written[index]
