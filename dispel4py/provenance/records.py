"""The records, with the original's field names: ``workflow_run`` (one per run, written by
the driver) and ``lineage`` (one per write, written where the PE runs), and their JSON.

Ids have the original's shape, ``<host>-<pid>-<uuid1>``: here one uuid1 per process
followed by a counter (:class:`Ids`), so an id costs a string format, not a clock read.

A record that cannot be serialised (metadata holding an object JSON cannot write) is
written with ``repr`` in place of what failed and counted (:class:`Serialiser`); the
recorder says how many in one warning at its end.
"""

from __future__ import annotations

import datetime
import inspect
import json
import os
import socket
import sys
import uuid
from importlib import metadata as importlib_metadata
from itertools import count
from typing import Any

from dispel4py.utils import total_size

from .lineage_json import Serialiser

__all__ = ["SCALARS", "Ids", "Serialiser", "now", "workflow_run_record", "size_of", "selected"]

SCALARS = frozenset((int, float, bool, type(None), str, bytes))
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


_clock = datetime.datetime.now


def now() -> str:
    """The original's timestamp format (``str(datetime.now())``)."""
    return str(_clock())


class Ids:
    """Unique ids of this process: ``<host>-<pid>-<uuid1>-<n>``."""

    def __init__(self) -> None:
        self.prefix = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid1()}-"
        self.counter = count(1).__next__

    def new(self) -> str:
        return self.prefix + str(self.counter())


def size_of(data: Any) -> int:
    """The item's size in bytes, as the original's ``total_size`` (fast for scalars)."""
    if type(data) in SCALARS:
        return sys.getsizeof(data)
    try:
        return total_size(data)
    except Exception:  # an object whose size cannot be walked: its shallow size
        return sys.getsizeof(data, 0)


def _source_of(pe: Any) -> dict[str, str]:
    cls = type(pe)
    try:
        code = inspect.getsource(cls._process) if hasattr(cls, "_process") else ""
    except (OSError, TypeError):
        code = ""
    return {"type": str(cls.__mro__[:-1]), "code": code, "functionName": cls.__name__}


def _modules() -> list[str]:
    """``name==version`` of every installed distribution (the original's ``modules``).

    Read from the ``Name:`` and ``Version:`` lines at the head of each ``*.dist-info``
    / ``*.egg-info`` on ``sys.path``: ``importlib.metadata`` parses every whole file with
    the ``email`` package, about 70 ms per run here, which a run of a second or two would
    feel. It is the fallback when a distribution cannot be read that way."""
    names = set()
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:  # a zip file or a folder that is not there
            continue
        for entry in entries:
            if entry.endswith((".dist-info", ".egg-info")):
                found = _name_version(os.path.join(folder or ".", entry))
                if found is None:  # not readable by its head: the slow, general way
                    return _modules_by_importlib()
                names.add(found)
    return sorted(names, key=str.lower)


def _modules_by_importlib() -> list[str]:
    names = set()
    for dist in importlib_metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            names.add(f"{name}=={dist.version}")
    return sorted(names, key=str.lower)


def _name_version(info: str) -> str | None:
    """``name==version`` from the head of a distribution's metadata, or ``None``."""
    for file in ("METADATA", "PKG-INFO"):
        path = info if os.path.isfile(info) else os.path.join(info, file)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                fields = {}
                for line in handle:
                    if not line.strip():
                        break  # the headers end at the first empty line
                    key, sep, value = line.partition(":")
                    if sep and key in ("Name", "Version"):
                        fields[key] = value.strip()
                        if len(fields) == 2:
                            return f"{fields['Name']}=={fields['Version']}"
        except OSError:
            continue
    return None


def workflow_run_record(config: Any, plan: Any, mapping: str) -> dict[str, Any]:
    """The ``workflow_run`` record of the original (one per run)."""
    record = {
        "_id": config.run_id,
        "runId": config.run_id,
        "startTime": now(),
        "username": config.user,
        "workflowId": config.workflow_id,
        "workflowName": config.workflow_name,
        "description": config.description,
        "sessionId": config.session_id,
        "systemId": config.system_id,
        "mapping": mapping,
        "type": "workflow_run",
        "modules": _modules(),
        "prov:type": config.workflow_type,
        "source": {pe_id: _source_of(pe) for pe_id, pe in plan.pes.items()},
        "status": "active",
    }
    return {k: v for k, v in record.items() if v != "" or k in ("workflowId", "workflowName")}


_OPS = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$in": lambda a, b: a in b,
    "$nin": lambda a, b: a not in b,
}


def selected(rules: dict[str, Any], content: list[Any]) -> bool:
    """Whether a record whose stream content (metadata) is ``content`` passes the PE's
    ``s-prov:sel-rules`` (``{term: {"$gt": 0, ...}}``): some metadata entry has every term,
    each satisfying every operator. A comparison that cannot be made fails."""
    for entry in content:
        if not isinstance(entry, dict):
            continue
        try:
            if all(
                term in entry and all(_OPS[op](entry[term], bound) for op, bound in tests.items())
                for term, tests in rules.items()
            ):
                return True
        except (TypeError, KeyError):
            continue
    return False
