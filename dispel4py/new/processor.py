"""The original ``dispel4py.new.processor``: the CLI entry point and the helpers user code imports.

``python -m dispel4py.new.processor <mapping> <workflow>`` runs the CLI (``main``). The other
names are the original's public helpers, kept for scripts and custom mappings that import
them: reading inputs from arguments (``create_inputs``, ``load_graph_and_inputs``), the
communication classes, ``assign_and_connect`` (the original's instance layout),
``GenericWrapper``. The engine itself does not use them.

Where the original was wrong, these are not: group-by uses the stable hash of every
mapping (``dispel4py.engine.keys``), each instance gets its own list of sources (the
original shared one list, and waited for too many ends of stream), and failures raise
clear errors instead of returning ``None`` silently.
"""

from __future__ import annotations

import argparse
import logging
import sys
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from dispel4py.cli import console_main
from dispel4py.cli import main as _cli_main
from dispel4py.core import GROUPING, WRITER, GenericPE
from dispel4py.engine.keys import stable_hash
from dispel4py.new.mappings import config
from dispel4py.workflow_graph import WorkflowGraph

__all__ = [
    "STATUS_ACTIVE",
    "STATUS_INACTIVE",
    "STATUS_TERMINATED",
    "STATUS",
    "config",
    "simple_logger",
    "get_inputs",
    "GenericWriter",
    "GenericWrapper",
    "ShuffleCommunication",
    "GroupByCommunication",
    "AllToOneCommunication",
    "OneToAllCommunication",
    "assign_and_connect",
    "get_partitions",
    "create_arg_parser",
    "parse_common_args",
    "get_inputs_from_arguments",
    "create_inputs",
    "check_commandline_argument",
    "load_graph_and_inputs",
    "main",
]

_log = logging.getLogger("dispel4py.cli")

STATUS_ACTIVE = 10
STATUS_INACTIVE = 11
STATUS_TERMINATED = 12
STATUS = {STATUS_ACTIVE: "ACTIVE", STATUS_INACTIVE: "INACTIVE", STATUS_TERMINATED: "TERMINATED"}


def main(argv: Sequence[str] | None = None) -> int:
    return _cli_main(argv)


def simple_logger(self: Any, msg: Any) -> None:
    """What the original installed as ``pe.log``: ``<id> (rank r): msg`` (``GenericPE.log``)."""
    GenericPE.log(self, msg)


def get_inputs(pe: Any, inputs: dict[Any, Any]) -> Any | None:
    """``inputs[pe]``, else ``inputs[pe.name]``, else ``inputs[pe.id]``, else ``None``."""
    for key in (pe, getattr(pe, "name", None), getattr(pe, "id", None)):
        try:
            if key is not None and key in inputs:
                return inputs[key]
        except TypeError:  # an unhashable PE
            continue
    return None


# -- a driver for one PE instance, for custom mappings --------------------------------------------
class GenericWriter:
    """``pe.write(name, data)`` -> ``wrapper._write(name, data)``."""

    def __init__(self, wrapper: Any, name: str) -> None:
        self.wrapper = wrapper
        self.name = name

    def write(self, data: Any) -> None:
        self.wrapper._write(self.name, data)


class GenericWrapper:
    """Runs one PE instance: ``preprocess``, a ``process`` call per input read by ``_read``
    until it returns ``STATUS_TERMINATED``, ``postprocess``, ``_terminate``.

    Subclasses implement ``_write(name, data)``, ``_terminate()`` and, for inputs that do
    not come from ``provided_inputs`` (an iteration count or a list of input dicts),
    ``_read()``.
    """

    def __init__(self, pe: Any) -> None:
        self.provided_inputs: Any = None
        self._num_sources = 0
        self.pe = pe
        self.pe.wrapper = self
        self.targets: dict[str, Any] = {}
        self._sources: dict[str, Any] = {}
        for output in self.pe.outputconnections:
            self.pe.outputconnections[output][WRITER] = GenericWriter(self, output)

    @property
    def sources(self) -> dict[str, Any]:
        return self._sources

    @sources.setter
    def sources(self, sources: dict[str, Any]) -> None:
        self._num_sources = sum(len(s) for s in sources.values())
        self._sources = sources

    def process(self) -> None:
        iterations = 0
        self.pe.preprocess()
        inputs, status = self._read()
        while status != STATUS_TERMINATED:
            if inputs is not None:
                outputs = self.pe.process(inputs)
                iterations += 1
                for name, value in (outputs or {}).items():
                    self._write(name, value)
            inputs, status = self._read()
        self.pe.postprocess()
        self._terminate()
        self.pe.log("Processed 1 iteration." if iterations == 1 else f"Processed {iterations} iterations.")

    def _read(self) -> Any:
        provided = self.provided_inputs
        if provided is None:
            raise NotImplementedError(f"{type(self).__name__}._read: this PE has no provided inputs")
        if isinstance(provided, int):
            if provided > 0:
                self.provided_inputs = provided - 1
                return {}, STATUS_ACTIVE
            return None, STATUS_TERMINATED
        if provided:
            return provided.pop(0), STATUS_ACTIVE
        return None, STATUS_TERMINATED

    @abstractmethod
    def _write(self, name: str, data: Any) -> None: ...

    @abstractmethod
    def _terminate(self) -> None: ...


# -- where each item goes, seen from one source instance --------------------------------------------
class ShuffleCommunication:
    """Round-robin; source instance ``j`` starts at destination ``j % n``."""

    def __init__(self, rank: int, sources: Sequence[int], destinations: Sequence[int]) -> None:
        self.destinations = list(destinations)
        self.currentIndex = (list(sources).index(rank) % len(self.destinations)) - 1
        self.name = None

    def get_destination(self, data: Any) -> list[int]:
        self.currentIndex = (self.currentIndex + 1) % len(self.destinations)
        return [self.destinations[self.currentIndex]]


class GroupByCommunication:
    """``data`` is ``{input_name: item}``; the key is ``item[k]`` for each ``k`` of ``group_by``,
    hashed with the stable hash (the same instance in every process and on every host)."""

    def __init__(self, destinations: Sequence[int], input_name: str, group_by: Sequence[Any]) -> None:
        self.group_by = group_by
        self.destinations = list(destinations)
        self.input_name = input_name
        self.name = group_by

    def get_destination(self, data: Any) -> list[int]:
        key = tuple(data[self.input_name][k] for k in self.group_by)
        return [self.destinations[stable_hash(key) % len(self.destinations)]]


class AllToOneCommunication:
    def __init__(self, destinations: Sequence[int]) -> None:
        self.destinations = list(destinations)
        self.name = "global"

    def get_destination(self, data: Any) -> list[int]:
        return [self.destinations[0]]


class OneToAllCommunication:
    def __init__(self, destinations: Sequence[int]) -> None:
        self.destinations = list(destinations)
        self.name = "all"

    def get_destination(self, data: Any) -> list[int]:
        return list(self.destinations)


def _communication(rank: int, sources: list[int], dest: Any, dest_input: str, targets: list[int]) -> Any:
    grouping = dest.inputconnections[dest_input].get(GROUPING)
    if isinstance(grouping, (list, tuple)):
        return GroupByCommunication(targets, dest_input, grouping)
    if grouping == "all":
        return OneToAllCommunication(targets)
    if grouping == "global":
        return AllToOneCommunication(targets)
    return ShuffleCommunication(rank, sources, targets)


# -- the original's layout: ranks per PE and the connections between them ---------------------------
def _instances(workflow: WorkflowGraph, size: int) -> dict[str, range] | None:
    pes = [node.get_contained_object() for node in workflow.nodes]
    fed = {id(dst) for _, _, dst, _ in workflow.connections}
    sources = [pe for pe in pes if id(pe) not in fed]
    total = len(sources) + sum(pe.numprocesses for pe in pes if id(pe) in fed)
    if total > size:
        _log.warning("Graph is larger than job size: %d > %d.", total, size)
        return None
    processes: dict[str, range] = {}
    counter = 0
    for pe in pes:
        if id(pe) not in fed or getattr(pe, "single", False):
            n = 1
        elif pe.numprocesses > 1:
            n = pe.numprocesses
        else:
            n = int((size - len(sources)) / max(1, total - len(sources)))
        processes[pe.id] = range(counter, counter + n)
        counter += n
    return processes


def assign_and_connect(workflow: WorkflowGraph, size: int) -> tuple[dict, dict, dict] | None:
    """``(processes, input_mappings, output_mappings)`` for ``size`` ranks, or ``None`` (and a
    warning) when the graph needs more: ``processes`` is ``{pe_id: range of ranks}``,
    ``input_mappings[rank]`` ``{input: [source ranks]}``, ``output_mappings[rank]``
    ``{output: [(destination input, communication)]}``."""
    processes = _instances(workflow, size)
    if processes is None:
        return None
    inputs: dict[int, dict[str, list[int]]] = {r: {} for ranks in processes.values() for r in ranks}
    outputs: dict[int, dict[str, list[tuple[str, Any]]]] = {r: {} for r in inputs}
    for src, out, dst, inp in workflow.connections:
        sources, targets = list(processes[src.id]), list(processes[dst.id])
        for rank in targets:
            inputs[rank].setdefault(inp, []).extend(sources)  # a list per instance
        for rank in sources:
            outputs[rank].setdefault(out, []).append((inp, _communication(rank, sources, dst, inp, targets)))
    return processes, inputs, outputs


def get_partitions(workflow: WorkflowGraph) -> list[list[Any]]:
    """``workflow.partitions``, or (set on the graph) ``[[sources], [the other PEs]]``."""
    partitions = getattr(workflow, "partitions", None)
    if partitions:
        return partitions
    _log.info("no predefined partitions")
    fed = {id(dst) for _, _, dst, _ in workflow.connections}
    pes = [node.get_contained_object() for node in workflow.nodes]
    workflow.partitions = [[pe for pe in pes if id(pe) not in fed], [pe for pe in pes if id(pe) in fed]]
    return workflow.partitions


# -- arguments and inputs ---------------------------------------------------------------------------
def create_arg_parser() -> argparse.ArgumentParser:
    """The common options (mapping, workflow, -a, -f, -d, -i, --provenance-config, ...)."""
    from dispel4py.cli.args import _common_parser

    return _common_parser(None)


def parse_common_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """``(args, remaining)``: the common options, and the mapping's options left over."""
    return create_arg_parser().parse_known_args(argv)


def get_inputs_from_arguments(args: Any) -> dict[str, Any]:
    """The ``-f`` file (preferred) or ``-d`` JSON of ``args`` as a dict; ``{}`` when neither."""
    from dispel4py.engine.inputs import parse_cli_inputs

    return parse_cli_inputs(getattr(args, "data", None), getattr(args, "file", None)) or {}


def create_inputs(args: Any, graph: WorkflowGraph) -> dict[str, Any]:
    """Inputs keyed by PE id: from ``-f``/``-d``, else ``args.iter`` iterations of every source
    PE (logging ``Processing N iterations.``). Keys may be PE names or ids."""
    from dispel4py.engine.inputs import normalise_inputs, roots

    inputs: dict[Any, Any] = get_inputs_from_arguments(args)
    if not inputs:
        iterations = getattr(args, "iter", 1)
        _log.warning("Processing %d iteration%s.", iterations, "" if iterations == 1 else "s")
        inputs = {pe.id: iterations for pe in roots(graph)}
    return dict(normalise_inputs(graph, inputs))


def check_commandline_argument(argument: str) -> bool:
    """Whether a command-line argument starts with ``argument``."""
    return any(arg.startswith(argument) for arg in sys.argv)


def load_graph_and_inputs(args: Any) -> tuple[WorkflowGraph, dict[str, Any]]:
    """The graph of ``args.module`` (``args.attr``), flattened, and its inputs (``create_inputs``).

    Errors raise :class:`dispel4py.errors.GraphError`/``InputError`` where the original
    returned ``(None, None)``.
    """
    from dispel4py.engine.loading import load_workflow

    graph = load_workflow(args.module, getattr(args, "attr", None))
    return graph, create_inputs(args, graph)


if __name__ == "__main__":
    console_main()
