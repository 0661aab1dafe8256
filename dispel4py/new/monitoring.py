"""Timing helpers kept from the original ``dispel4py.new.monitoring``."""

from __future__ import annotations

import time
from typing import Any

from dispel4py.core import GenericPE

__all__ = ["Timer", "ProcessTimingPE"]


class Timer:
    """``with Timer() as t: ...`` then ``t.secs``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end = time.perf_counter()
        self.secs = self.end - self.start


class ProcessTimingPE(GenericPE):
    """Wraps a PE, times each ``process`` call and logs the average in ``postprocess``.

    Every other attribute (ports, id, name, rank, state) is the wrapped PE's own, so the
    wrapper can stand in for it anywhere in a graph.
    """

    def __init__(self, baseObject: GenericPE) -> None:
        object.__setattr__(self, "baseObject", baseObject)
        object.__setattr__(self, "times_total", 0.0)
        object.__setattr__(self, "times_count", 0)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "baseObject":
            raise AttributeError(name)
        return getattr(self.baseObject, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("times_total", "times_count"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.baseObject, name, value)

    def preprocess(self) -> None:
        self.baseObject.preprocess()

    def process(self, inputs: dict[str, Any]) -> Any:
        with Timer() as timer:
            result = self.baseObject.process(inputs)
        self.times_total += timer.secs
        self.times_count += 1
        return result

    def postprocess(self) -> None:
        self.baseObject.postprocess()
        if self.times_count:
            self.log(f"Average processing time: {self.times_total / self.times_count}")
        else:
            self.log("Average processing time: no items processed")

    def write(self, name: str, data: Any, **kwargs: Any) -> None:
        self.baseObject.write(name, data, **kwargs)
