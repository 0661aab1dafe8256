"""Aggregates (COUNT, SUM, MIN, MAX, AVG, STDDEV) and their map-reduce composites.

The ``parallel_*`` factories return a composite of two PEs: a partial aggregate, which any
mapping may run as several instances, each aggregating its share of the items and writing
its partial result when its input ends, and a reduce PE on a ``'global'`` input that
combines the partials. Connect a composite like a PE: ``graph.connect(producer, "output",
parallel_sum(), "input")``; its result comes out of ``"output"``.

Items are lists or tuples; ``indexes`` (or ``index``) choose the positions aggregated. The
results, one item each: ``[v, ...]`` (one value per index) for count/sum/min/max,
``[avg, count, sum]`` for averages, ``(std_dev, count, sum, sum_of_squares)`` for standard
deviations (the sample standard deviation; NaN below two values).

Unlike the original: ``indexes`` other than ``[0, 1, ...]`` work, ``index`` is honoured,
the std-dev reduce reads what the partial writes, MIN/MAX start from
the first value (not 0), and an instance that saw no items writes no partial where there is
nothing to write (no average or minimum of nothing, no division by zero).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from dispel4py.core import GenericPE
from dispel4py.workflow_graph import WorkflowGraph

__all__ = [
    "AggregatePE",
    "ContinuousReducePE",
    "CountPE",
    "SumPE",
    "MinPE",
    "MaxPE",
    "AverageParallelPE",
    "AverageReducePE",
    "StdDevPE",
    "StdDevReducePE",
    "parallel_aggregate",
    "parallel_count",
    "parallel_sum",
    "parallel_min",
    "parallel_max",
    "parallel_avg",
    "parallel_std_dev",
]


class AggregatePE(GenericPE):
    """Base of the aggregates: input ``input``, output ``output``; ``value`` holds one
    running value per index and is written once, when the input ends.

    Subclasses implement ``_process(inputs)``, which gets the inputs dict
    (``inputs["input"]`` is the item), as in the original.
    """

    INPUT_NAME = "input"
    OUTPUT_NAME = "output"

    def __init__(self, indexes: Sequence[Any] | None = None) -> None:
        GenericPE.__init__(self)
        self._add_input(self.INPUT_NAME)
        self._add_output(self.OUTPUT_NAME)
        self.indexes = list(indexes) if indexes is not None else [0]
        self.value: list[Any] = [0 for _ in self.indexes]

    def _postprocess(self) -> None:
        self.write(self.OUTPUT_NAME, list(self.value))


class ContinuousReducePE(GenericPE):
    """Writes ``value`` after every item; subclasses implement ``_process(item)`` (the item
    itself, not the inputs dict), updating ``self.value``."""

    INPUT_NAME = "input"
    OUTPUT_NAME = "output"

    def __init__(self, indexes: Sequence[Any] | None = None) -> None:
        GenericPE.__init__(self)
        self._add_input(self.INPUT_NAME)
        self._add_output(self.OUTPUT_NAME)
        self.indexes = list(indexes) if indexes is not None else [0]
        self.value: list[Any] = [0 for _ in self.indexes]

    def process(self, inputs: dict[str, Any]) -> None:
        self._process(inputs[self.INPUT_NAME])
        self.write(self.OUTPUT_NAME, list(self.value))  # a copy: later items must not change it


class CountPE(AggregatePE):
    """``[number of items]``."""

    def __init__(self) -> None:
        AggregatePE.__init__(self, [0])

    def _process(self, inputs: dict[str, Any]) -> None:
        self.value[0] += 1


class SumPE(AggregatePE):
    """``[sum of item[i] for each index i]``."""

    def _process(self, inputs: dict[str, Any]) -> None:
        item = inputs[self.INPUT_NAME]
        for position, index in enumerate(self.indexes):
            self.value[position] += item[index]


class _ExtremePE(AggregatePE):
    """MIN/MAX: starts from the first value; writes nothing if it saw no item."""

    def __init__(self, indexes: Sequence[Any] | None = None) -> None:
        AggregatePE.__init__(self, indexes)
        self.value = [None for _ in self.indexes]

    def _better(self, new: Any, old: Any) -> bool:
        raise NotImplementedError

    def _process(self, inputs: dict[str, Any]) -> None:
        item = inputs[self.INPUT_NAME]
        for position, index in enumerate(self.indexes):
            new, old = item[index], self.value[position]
            if old is None or self._better(new, old):
                self.value[position] = new

    def _postprocess(self) -> None:
        if any(v is not None for v in self.value):
            AggregatePE._postprocess(self)


class MinPE(_ExtremePE):
    """``[min of item[i] for each index i]``."""

    def _better(self, new: Any, old: Any) -> bool:
        return new < old


class MaxPE(_ExtremePE):
    """``[max of item[i] for each index i]``."""

    def _better(self, new: Any, old: Any) -> bool:
        return new > old


class AverageParallelPE(GenericPE):
    """Partial average of ``item[index]``: writes ``[avg, count, sum]`` (nothing if no item)."""

    INPUT_NAME = "input"
    OUTPUT_NAME = "output"

    def __init__(self, index: Any = 0) -> None:
        GenericPE.__init__(self)
        self._add_input(self.INPUT_NAME)
        self._add_output(self.OUTPUT_NAME)
        self.index = index
        self.sum: Any = 0
        self.count = 0

    def _process(self, inputs: dict[str, Any]) -> None:
        self.sum += inputs[self.INPUT_NAME][self.index]
        self.count += 1

    def _postprocess(self) -> None:
        if self.count:
            self.write(self.OUTPUT_NAME, [self.sum / self.count, self.count, self.sum])


class AverageReducePE(GenericPE):
    """Combines ``[avg, count, sum]`` partials (``'global'`` input) into ``[avg, count, sum]``."""

    INPUT_NAME = "input"
    OUTPUT_NAME = "output"

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input(self.INPUT_NAME, grouping="global")
        self._add_output(self.OUTPUT_NAME)
        self.sum: Any = 0
        self.count = 0

    def _process(self, inputs: dict[str, Any]) -> None:
        _, count, total = inputs[self.INPUT_NAME]
        self.count += count
        self.sum += total

    def _postprocess(self) -> None:
        if self.count:
            self.write(self.OUTPUT_NAME, [self.sum / self.count, self.count, self.sum])


def _std_dev(count: int, total: Any, squares: Any) -> float:
    """The sample standard deviation from the count, sum and sum of squares."""
    if count < 2:
        return math.nan
    return math.sqrt(max(0.0, (count * squares - total * total) / (count * (count - 1))))


class StdDevPE(GenericPE):
    """Partial of ``item[index]``: writes ``(std_dev, count, sum, sum_of_squares)``."""

    INPUT_NAME = "input"
    OUTPUT_NAME = "output"

    def __init__(self, index: Any = 0) -> None:
        GenericPE.__init__(self)
        self._add_input(self.INPUT_NAME)
        self._add_output(self.OUTPUT_NAME)
        self.index = index
        self.sum: Any = 0
        self.sum_squared: Any = 0
        self.count = 0

    def _process(self, inputs: dict[str, Any]) -> None:
        value = inputs[self.INPUT_NAME][self.index]
        self.sum += value
        self.sum_squared += value * value
        self.count += 1

    def _postprocess(self) -> None:
        if self.count:
            std = _std_dev(self.count, self.sum, self.sum_squared)
            self.write(self.OUTPUT_NAME, (std, self.count, self.sum, self.sum_squared))


class StdDevReducePE(GenericPE):
    """Combines ``(std_dev, count, sum, sum_of_squares)`` partials (``'global'`` input)."""

    INPUT_NAME = "input"
    OUTPUT_NAME = "output"

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input(self.INPUT_NAME, grouping="global")
        self._add_output(self.OUTPUT_NAME)
        self.sum: Any = 0
        self.sum_squared: Any = 0
        self.count = 0

    def _process(self, inputs: dict[str, Any]) -> None:
        _, count, total, squares = inputs[self.INPUT_NAME]
        self.count += count
        self.sum += total
        self.sum_squared += squares

    def _postprocess(self) -> None:
        if self.count:
            std = _std_dev(self.count, self.sum, self.sum_squared)
            self.write(self.OUTPUT_NAME, (std, self.count, self.sum, self.sum_squared))


# -- map-reduce composites --------------------------------------------------------------------------
def _composite(partial: Any, reduce: Any) -> WorkflowGraph:
    composite = WorkflowGraph()
    composite.connect(partial, partial.OUTPUT_NAME, reduce, reduce.INPUT_NAME)
    composite.inputmappings = {"input": (partial, partial.INPUT_NAME)}
    composite.outputmappings = {"output": (reduce, reduce.OUTPUT_NAME)}
    return composite


def parallel_aggregate(inst_pe: Any, reduce_pe: Any) -> WorkflowGraph:
    """``inst_pe`` (partial, any number of instances) then ``reduce_pe`` (one instance, its
    input grouped ``'global'``), as a composite with ports ``input`` and ``output``."""
    reduce_pe.inputconnections[reduce_pe.INPUT_NAME]["grouping"] = "global"
    reduce_pe.numprocesses = 1
    return _composite(inst_pe, reduce_pe)


def _positions(indexes: Sequence[Any] | None) -> tuple[list[Any], list[int]]:
    """The partial reads ``indexes``; the reduce reads the partial's list, by position."""
    chosen = list(indexes) if indexes is not None else [0]
    return chosen, list(range(len(chosen)))


def parallel_count() -> WorkflowGraph:
    """The number of items: counts per instance, summed by ``CountReduce``."""
    reduce = SumPE([0])
    reduce.name = "CountReduce"
    return parallel_aggregate(CountPE(), reduce)


def parallel_sum(indexes: Sequence[Any] | None = None) -> WorkflowGraph:
    chosen, positions = _positions(indexes)
    return parallel_aggregate(SumPE(chosen), SumPE(positions))


def parallel_min(indexes: Sequence[Any] | None = None) -> WorkflowGraph:
    chosen, positions = _positions(indexes)
    return parallel_aggregate(MinPE(chosen), MinPE(positions))


def parallel_max(indexes: Sequence[Any] | None = None) -> WorkflowGraph:
    chosen, positions = _positions(indexes)
    return parallel_aggregate(MaxPE(chosen), MaxPE(positions))


def parallel_avg(index: Any = 0) -> WorkflowGraph:
    return _composite(AverageParallelPE(index), AverageReducePE())


def parallel_std_dev(index: Any = 0) -> WorkflowGraph:
    return _composite(StdDevPE(index), StdDevReducePE())
