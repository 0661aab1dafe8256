"""How much an engine buffers and whether it times calls (:class:`Tuning`), from the
``--batch-size``/``--credits`` options; shared by the static executor and the dynamic engine."""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import Any

from dispel4py.engine.writers import RESULTS_LIMIT
from dispel4py.errors import UsageError

STREAM_RESULTS_S = 0.05  # as long as an item may wait in a part-filled batch between workers

__all__ = ["Tuning", "STREAM_RESULTS_S"]


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
    # results go to a consumer while the run goes (``dispel4py.stream``): workers ship them
    # in batches of at most ``batch_size`` items and at least every ``STREAM_RESULTS_S``, and
    # the transports bound what is in flight (docs/design.md, "Results while the run goes")
    streaming: bool = False
    recorder: Any = None  # a recording.RecorderFactory (provenance), None: nothing recorded

    @property
    def results_limit(self) -> int:
        """Result items a writer holds before they are shipped: small batches when streaming
        (the consumer's backpressure bound is counted in them), else few messages."""
        return self.batch_size if self.streaming else RESULTS_LIMIT

    @property
    def results_s(self) -> float:
        """Seconds a result may wait in a writer (0: until the batch is full or the worker
        waits), so a streamed item reaches its consumer soon after it is written."""
        return STREAM_RESULTS_S if self.streaming else 0.0

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
        if options.get("streaming"):  # set by dispel4py.stream, never a user option
            values["streaming"] = True
        if options.get("provenance") is not None:
            values["recorder"] = options["provenance"]
        return cls(**values)
