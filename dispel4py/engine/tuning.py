"""How much an engine buffers and whether it times calls (:class:`Tuning`), from the
``--batch-size``/``--credits`` options; shared by the static executor and the dynamic engine."""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import Any

from dispel4py.errors import UsageError

__all__ = ["Tuning"]


@dataclass(frozen=True)
class Tuning:
    """How much the executor buffers: items and bytes per batch, credits per destination
    instance, items and bytes a local inbox takes before it is drained inline; and whether
    each ``process`` call is timed (``timings``: the ``timed_*`` mappings); and what records
    provenance (``recorder``, see ``engine/recording.py``)."""

    batch_size: int = 1024
    credits: int = 4
    local_limit: int = 1024
    batch_bytes: int = 4 << 20
    local_bytes: int = 16 << 20
    timings: bool = False
    live_s: float = 0.0  # seconds between live counter samples (0: none; see live.py)
    recorder: Any = None  # a recording.RecorderFactory (provenance), None: nothing recorded

    @classmethod
    def from_options(cls, options: MappingABC[str, Any]) -> Tuning:
        """From the ``--batch-size``/``--credits`` options; a value below 1 is a usage error."""
        values: dict[str, Any] = {}
        for name, flag in (("batch_size", "--batch-size"), ("credits", "--credits")):
            value = options.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{flag} must be a whole number of at least 1 (got {value!r})")
            values[name] = value
        if options.get("timings"):
            values["timings"] = True
        if options.get("provenance") is not None:
            values["recorder"] = options["provenance"]
        return cls(**values)
