"""The processing element base class and the connection-dictionary keys.

This module is the compatibility surface that every dispel4py workflow imports: names,
attributes and method signatures follow the original dispel4py so that existing workflow
modules run unchanged. It knows nothing about mappings; the engine installs writers and
sets ``rank`` before a run.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

__all__ = ["GenericPE", "NAME", "TYPE", "DESCRIPTION", "META", "GROUPING", "WRITER", "prov_context"]

NAME = "name"
TYPE = "type"
DESCRIPTION = "descr"
META = "meta"
GROUPING = "grouping"
WRITER = "writer"


class GenericPE:
    """Base class of all processing elements (PEs).

    ``process(inputs)`` is called with a dict holding exactly one ``{input_name: item}``
    (or the user-supplied dict for a source PE) and returns ``None`` or
    ``{output_name: item}``; ``self.write(output, item)`` may be called any number of times
    from ``process`` and ``postprocess``.
    """

    # set by the engine before a run: ``rank`` is the instance's id in the run's plan (instances
    # of all PEs numbered 0.. in graph order: the original's rank, it changes with the mapping
    # and -n), ``instance_index`` its number among this PE's k instances (0..k-1).
    # Set by users: single/stateful (never scale this PE).
    rank: int
    instance_index: int
    single: Any
    stateful: Any

    def __init__(self, numprocesses: int = 1) -> None:
        self.inputconnections: dict[str, dict[str, Any]] = {}
        self.outputconnections: dict[str, dict[str, Any]] = {}
        self.wrapper: Any = "simple"
        self.pickleIgnore = list(vars(self))
        self.numprocesses = numprocesses
        self.name = self.__class__.__name__
        self.id = self.name + str(uuid.uuid4())

    # -- declaring ports -------------------------------------------------------------
    def _add_input(self, name: str, grouping: Any = None, tuple_type: Any = None) -> None:
        connection: dict[str, Any] = {NAME: name}
        if grouping:
            connection[GROUPING] = grouping
        if tuple_type:
            connection[TYPE] = tuple_type
        self.inputconnections[name] = connection

    def _add_output(self, name: str, tuple_type: Any = None) -> None:
        connection: dict[str, Any] = {NAME: name}
        if tuple_type:
            connection[TYPE] = tuple_type
        self.outputconnections[name] = connection

    def set_input_types(self, types: dict[str, Any]) -> None:
        """Hook called by ``WorkflowGraph.propagate_types``; does nothing by default."""

    def update_prov_state(self, *args: Any, **kwargs: Any) -> None:
        """The original's provenance call, available on every PE: records a state the PE's
        next outputs derive from when provenance is on (``dispel4py.provenance``), else
        does nothing. The recording writers carry the call (``prov_context``), so no class
        is patched and a PE without provenance has nothing to carry."""
        context = prov_context(self)
        if context is not None:
            context.update_prov_state(*args, **kwargs)

    def get_output_types(self) -> dict[str, Any]:
        types = {}
        for name, connection in self.outputconnections.items():
            if TYPE not in connection:
                raise KeyError(f"{self.id}: No output type defined for '{name}'")
            types[name] = connection[TYPE]
        return types

    # -- lifecycle hooks -------------------------------------------------------------
    def preprocess(self) -> None:
        self._preprocess()

    def _preprocess(self) -> None:
        pass

    def process(self, inputs: dict[str, Any]) -> Any:
        return self._process(inputs)

    def _process(self, data: Any) -> Any:
        return None

    def postprocess(self) -> None:
        self._postprocess()

    def _postprocess(self) -> None:
        pass

    # -- output ----------------------------------------------------------------------
    def write(self, name: str, data: Any, **kwargs: Any) -> None:
        if kwargs:
            self._write(name, data, **kwargs)
            return
        # the hot path, one call deep: forwarding an empty **kwargs, or a second call, costs
        # about as much as the engine's writer itself (benchmarks/profile_tiny.py)
        try:
            writer = self.outputconnections[name][WRITER]
        except KeyError:
            self._write(name, data)  # raises the error naming the PE and its outputs
            return
        writer.write(data)

    def _write(self, name: str, data: Any, **kwargs: Any) -> None:
        try:
            writer = self.outputconnections[name][WRITER]
        except KeyError:
            outputs = ", ".join(self.outputconnections) or "(none)"
            raise KeyError(
                f"Can't write data: Unknown output connection {name} for PE "
                f"{type(self).__name__} ({self.id}); outputs are: {outputs}"
            ) from None
        if kwargs:  # write(port, data, metadata=...): what a recording writer keeps
            write_meta = getattr(writer, "write_meta", None)
            if write_meta is not None:
                write_meta(data, **kwargs)
                return
        writer.write(data)

    # -- diagnostics -----------------------------------------------------------------
    def log(self, msg: Any) -> None:
        """Log ``msg`` as ``<id> (rank <r>): msg`` on the logger ``dispel4py.pe.<id>``.

        A real method (not an attribute injected by a mapping) so that it exists on every
        mapping and survives pickling.
        """
        rank = getattr(self, "rank", None)
        prefix = self.id if rank is None else f"{self.id} (rank {rank})"
        logging.getLogger(f"dispel4py.pe.{self.id}").info("%s: %s", prefix, msg)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'id', '?')}>"


def prov_context(pe: Any) -> Any:
    """The provenance context of ``pe`` in this run (found on its recording writers), or
    ``None`` when nothing is recorded."""
    for connection in pe.__dict__.get("outputconnections", {}).values():
        context = getattr(connection.get(WRITER), "prov_context", None)
        if context is not None:
            return context
    return None
