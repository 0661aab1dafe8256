"""The library entry point: ``dispel4py.run(graph, inputs, mapping="simple", **options)``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping as MappingABC
from typing import Any

from dispel4py.errors import UsageError, did_you_mean
from dispel4py.mappings import get_mapping
from dispel4py.mappings.base import Mapping
from dispel4py.result import RunResult
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["run", "mapping_options"]


def mapping_options(mapping_cls: type[Mapping], options: MappingABC[str, Any]) -> dict[str, Any]:
    """The mapping's option defaults (from its CLI options) overridden by ``options``."""
    parser = argparse.ArgumentParser(add_help=False)
    mapping_cls.add_arguments(parser)
    defaults = {a.dest: a.default for a in parser._actions if a.dest != "help"}
    unknown = [k for k in options if k not in defaults]
    if unknown:
        raise UsageError(
            f"mapping '{mapping_cls.name}' has no option '{unknown[0]}'"
            f"{did_you_mean(unknown[0], defaults)}; its options are: "
            f"{', '.join(sorted(defaults)) or '(none)'}"
        )
    return {**defaults, **options}


def run(
    graph: WorkflowGraph,
    inputs: MappingABC[Any, Any] | None = None,
    mapping: str = "simple",
    *,
    collect: MappingABC[str, list[str]] | None = None,
    **options: Any,
) -> RunResult | None:
    """Run ``graph`` on ``mapping`` and return its :class:`RunResult`.

    ``inputs`` maps PEs (objects, names or ids) to a number of iterations or a list of input
    dicts; ``None`` runs every source PE once. ``options`` are the mapping's options by
    their long names (``num=4`` for ``multi``). ``collect`` (``{pe_id: [outputs]}``) chooses
    which outputs are returned; by default, every unconnected output. Under ``mpi`` only
    rank 0 gets the result; the other ranks get ``None``.
    """
    mapping_cls = get_mapping(mapping)
    return mapping_cls(mapping_options(mapping_cls, options)).run(graph, inputs, collect=collect)
