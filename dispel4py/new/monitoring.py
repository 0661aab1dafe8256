"""Timing helpers kept from the original ``dispel4py.new.monitoring``.

For timings of a whole run, per PE instance and per call, use the ``timed_simple``,
``timed_multi`` and ``timed_mpi`` mappings (``dispel4py/observe/timing.py``) rather than wrapping PEs.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from dispel4py.core import GenericPE

__all__ = ["Timer", "MonitoringWrapper", "ReadTimingWrapper", "ProcessTimingPE"]


class Timer:
    """``with Timer() as t: ...`` then ``t.secs``."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end = time.perf_counter()
        self.secs = self.end - self.start


class MonitoringWrapper:
    """Base of wrappers that become their PE: ``MonitoringWrapper(pe)`` is an instance of a
    new class deriving from the wrapper's class and the PE's, sharing the PE's attributes
    (``__dict__``), so it is the PE (same id, ports, state) with the wrapper's methods
    first. ``self.baseObject`` is the PE, for calling its own methods.
    """

    log: Any  # the PE's

    def __init__(self, baseObject: Any) -> None:
        wrapper = type(self)
        self.__class__ = type(type(baseObject).__name__, (wrapper, type(baseObject)), {})
        self.__dict__ = baseObject.__dict__
        self.baseObject = baseObject

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        """A copy (another instance of the PE) wraps a copy of the PE, sharing its attributes
        as the original pair does."""
        base = copy.deepcopy(self.baseObject, memo)
        twin = object.__new__(type(self))
        twin.__dict__ = base.__dict__
        memo[id(self)] = twin
        return twin


class ReadTimingWrapper(MonitoringWrapper):
    """Measures the time between consecutive inputs of a PE (how fast it is fed) and logs
    ``Average read rate : <seconds>`` when it ends."""

    def __init__(self, baseObject: Any) -> None:
        MonitoringWrapper.__init__(self, baseObject)
        self.readtime: float | None = None
        self.readrate: list[float] = []

    def process(self, inputs: dict[str, Any]) -> Any:
        now = time.perf_counter()
        if self.readtime is not None:
            self.readrate.append(now - self.readtime)
        self.readtime = now
        return self.baseObject.process(inputs)

    def postprocess(self) -> None:
        self.baseObject.postprocess()
        if self.readrate:
            self.log(f"Average read rate : {sum(self.readrate) / len(self.readrate)}")
        else:
            self.log("Average read rate : fewer than two inputs")


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
