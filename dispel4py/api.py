"""The library entry point: ``dispel4py.run(graph, inputs, mapping="simple", **options)``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping as MappingABC
from typing import Any

import dispel4py.provenance as prov
from dispel4py.engine.fresh import fresh_copy
from dispel4py.engine.result import RunResult
from dispel4py.errors import UsageError, did_you_mean
from dispel4py.mappings import get_mapping
from dispel4py.mappings.base import Mapping
from dispel4py.mappings.options import ignoring_message, other_mapping_dests, split_options
from dispel4py.observe.live import LiveBoard
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["run", "run_in_place", "mapping_options"]

_log = logging.getLogger("dispel4py.api")


def mapping_options(mapping_cls: type[Mapping], options: MappingABC[str, Any]) -> dict[str, Any]:
    """The mapping's option defaults (from its CLI options) overridden by ``options``."""
    parser = argparse.ArgumentParser(add_help=False)
    mapping_cls.add_arguments(parser)
    defaults = {a.dest: a.default for a in parser._actions if a.dest != "help"}
    own, ignored, unknown = split_options(mapping_cls.name, defaults, options)
    if unknown:
        known = set(defaults) | set(other_mapping_dests(mapping_cls.name))
        raise UsageError(
            f"mapping '{mapping_cls.name}' has no option '{unknown[0]}'"
            f"{did_you_mean(unknown[0], known)}; its options are: "
            f"{', '.join(sorted(defaults)) or '(none)'}"
        )
    if ignored:  # options of other mappings: ignored, said once (see mappings/options.py)
        entries = [(f"{k}={options[k]!r}", owners) for k, owners in ignored.items()]
        _log.warning("%s", ignoring_message(mapping_cls.name, entries))
    return {**defaults, **own}


def run(
    graph: WorkflowGraph,
    inputs: MappingABC[Any, Any] | None = None,
    mapping: str = "simple",
    *,
    collect: MappingABC[str, list[str]] | None = None,
    board: LiveBoard | None = None,
    provenance: Any = None,
    **options: Any,
) -> RunResult | None:
    """Run ``graph`` on ``mapping`` and return its :class:`RunResult`.

    ``inputs`` maps PEs (objects, names or ids) to a number of iterations or a list of input
    dicts; ``None`` runs every source PE once. ``options`` are the mapping's options by
    their long names (``num=4`` for ``multi``). ``collect`` (``{pe_id: [outputs]}``) chooses
    which outputs are returned; by default, every unconnected output. Under ``mpi`` only
    rank 0 gets the result; the other ranks get ``None``. ``board`` (a
    :class:`dispel4py.observe.live.LiveBoard`) turns on live counters: read ``board.progress()``
    from another thread while the run goes (``docs/observability.md``).

    ``provenance`` records the lineage of every result (``docs/provenance.md``): ``True``, a
    config file's path, a dict (the original's ``s-prov:*`` keys and/or ``path``,
    ``bulk_size``, ``run_id``, ``user``, ``url``, ``token``) or a
    :class:`dispel4py.provenance.ProvenanceConfig`; ``None`` (the default) records only if
    the workflow called ``configure_prov_run``, ``False`` never.

    Each run works on a fresh deep copy of the graph's PEs: ``graph`` is left as it was, and
    running it twice gives the same result twice (see ``engine/fresh.py``).
    """
    graph, inputs = fresh_copy(graph, inputs)
    return run_in_place(
        graph, inputs, mapping, collect=collect, board=board, provenance=provenance, **options
    )


def run_in_place(
    graph: WorkflowGraph,
    inputs: MappingABC[Any, Any] | None = None,
    mapping: str = "simple",
    *,
    collect: MappingABC[str, list[str]] | None = None,
    board: LiveBoard | None = None,
    provenance: Any = None,
    **options: Any,
) -> RunResult | None:
    """:func:`run` on the caller's PE objects, which keep their state afterwards: the
    behaviour of the original's entry points (``simple_process.process_and_return`` …)."""
    mapping_cls = get_mapping(mapping)
    runner = mapping_cls(mapping_options(mapping_cls, options))
    # off: None, and nothing of the provenance package but its light __init__ is loaded
    on = prov.asked(provenance, graph)
    runner.options["provenance"] = prov.recording_for(provenance, graph, mapping) if on else None
    runner.board = board
    return runner.run(graph, inputs, collect=collect)
