"""Convenience PE base classes and composite builders (compatible with the original)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from dispel4py.core import NAME, GenericPE
from dispel4py.errors import GraphError
from dispel4py.workflow_graph import WorkflowGraph

__all__ = [
    "BasePE",
    "IterativePE",
    "ProducerPE",
    "ConsumerPE",
    "SimpleFunctionPE",
    "create_iterative_chain",
    "CompositePE",
    "GenericPE",
    "NAME",
    "WorkflowGraph",
    "abstractmethod",
]


class BasePE(GenericPE):
    """A PE with ``input0..`` / ``output0..`` plus named inputs and outputs."""

    INPUT_NAME = "input"
    OUTPUT_NAME = "output"

    def __init__(
        self,
        inputs: Iterable[str] | None = None,
        outputs: Iterable[str] | None = None,
        num_inputs: int = 0,
        num_outputs: int = 0,
    ) -> None:
        GenericPE.__init__(self)
        for i in range(num_inputs):
            self._add_input(f"input{i}")
        for i in range(num_outputs):
            self._add_output(f"output{i}")
        for name in inputs or ():
            self._add_input(name)
        for name in outputs or ():
            self._add_output(name)


class IterativePE(GenericPE):
    """One input ``input``, one output ``output``: ``_process(item)`` returns the result."""

    INPUT_NAME = "input"
    OUTPUT_NAME = "output"

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input(self.INPUT_NAME)
        self._add_output(self.OUTPUT_NAME)

    def process(self, inputs: dict[str, Any]) -> Any:
        result = self._process(inputs[self.INPUT_NAME])
        if result is not None:
            return {self.OUTPUT_NAME: result}
        return None

    def _process(self, data: Any) -> Any:
        return None


class ProducerPE(GenericPE):
    """No input, one output ``output``: ``_process(inputs)`` gets the raw inputs dict."""

    OUTPUT_NAME = "output"

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_output(self.OUTPUT_NAME)

    def process(self, inputs: dict[str, Any]) -> Any:
        result = self._process(inputs)
        if result is not None:
            return {self.OUTPUT_NAME: result}
        return None

    def _process(self, inputs: Any) -> Any:
        return None


class ConsumerPE(GenericPE):
    """One input ``input``, no output: ``_process(item)``."""

    INPUT_NAME = "input"

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input(self.INPUT_NAME)

    def process(self, inputs: dict[str, Any]) -> None:
        self._process(inputs[self.INPUT_NAME])

    def _process(self, data: Any) -> None:
        return None


class SimpleFunctionPE(IterativePE):
    """An IterativePE applying ``compute_fn(item, **params)``."""

    def __init__(
        self, compute_fn: Callable[..., Any] | None = None, params: dict[str, Any] | None = None
    ) -> None:
        IterativePE.__init__(self)
        if compute_fn is not None:
            self.name = "PE_" + compute_fn.__name__
        self.compute_fn = compute_fn
        self.params = params or {}

    def _process(self, data: Any) -> Any:
        if self.compute_fn is None:
            return None
        return self.compute_fn(data, **self.params)


def create_iterative_chain(
    functions: Iterable[Any],
    function_pe_class: type = SimpleFunctionPE,
    name_prefix: str = "PE_",
    name_suffix: str = "",
) -> WorkflowGraph:
    """Chain functions (``fn`` or ``(fn, params)``) into a composite graph."""
    graph = WorkflowGraph()
    first = previous = None
    for entry in functions:
        fn, params = entry if isinstance(entry, tuple) else (entry, {})
        pe = function_pe_class()
        pe.compute_fn = fn
        pe.params = params
        pe.name = name_prefix + fn.__name__ + name_suffix
        if previous is None:
            graph.add(pe)
            first = pe
        else:
            graph.connect(previous, previous.OUTPUT_NAME, pe, pe.INPUT_NAME)
        previous = pe
    if first is None or previous is None:
        raise GraphError("create_iterative_chain() needs at least one function")
    graph.inputmappings = {"input": (first, first.INPUT_NAME)}
    graph.outputmappings = {"output": (previous, previous.OUTPUT_NAME)}
    return graph


class CompositePE(WorkflowGraph):
    """A graph usable as one node: ``create_graph(self, **params)`` builds its contents."""

    def __init__(
        self,
        create_graph: Callable[..., Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        WorkflowGraph.__init__(self)
        self.inputmappings: dict[str, tuple[Any, str]] = {}
        self.outputmappings: dict[str, tuple[Any, str]] = {}
        if create_graph is not None:
            create_graph(self, **(params or {}))

    def _map_input(self, mapped_input: str, input_pe: Any, input_name: str) -> None:
        self.inputmappings[mapped_input] = (input_pe, input_name)

    def _map_output(self, mapped_output: str, output_pe: Any, output_name: str) -> None:
        self.outputmappings[mapped_output] = (output_pe, output_name)
