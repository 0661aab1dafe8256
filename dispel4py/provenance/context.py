"""The lineage of one PE instance: which inputs (and states) its next output derives from.

One :class:`InstanceContext` per instance, in the process where it runs. Its *flow* is the
list of derivations (the original's ``derivationIds``: ``DerivedFromDatasetID``,
``TriggeredByProcessIterationID``, ``prov_cluster``, ``port``, ``iterationIndex``) an
output written now derives from; *states* are the state records ``update_prov_state``
made, which outputs derive from until discarded.

* An iteration begins with each item (its derivation joins the flow) or each call of a
  source's ``process`` (nothing joins), and ends with the rule of the PE's provenance type
  (``apply_derivation_rule('end_invocation_event', void)``, ``rules.py``): by default the
  flow is discarded, so an output derives from the item that triggered it; pattern types
  keep it (``AccumulateFlow``, ``Nby1Flow``: until an output; ``SlideFlow``: a window).
* ``postprocess`` is an iteration of its own. A PE of the default type that defines one has
  its past inputs kept aside (the *history*), so a total written in ``postprocess`` derives
  from every item it was computed from.
* **Bounded memory**: a flow or history longer than :data:`COMPACT` is folded into a state
  record (port ``_d4p_state``) deriving from those entries, and replaced by one derivation
  of that record: ``dispel4py prov trace`` follows it back to every item.
"""

from __future__ import annotations

from typing import Any

from .records import now, selected, size_of

__all__ = ["InstanceContext", "COMPACT", "STATE_PORT"]

COMPACT = 256
STATE_PORT = "_d4p_state"


class InstanceContext:
    def __init__(self, recorder: Any, pe: Any, pe_id: str, component: dict[str, Any]) -> None:
        self.recorder = recorder
        self.pe = pe
        self.pe_id = pe_id
        self.cluster = component.get("cluster") or pe_id
        self.flow: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.states: dict[str, dict[str, Any]] = {}
        self.keep_history = False  # set by rules.py
        self.stateful_port = component.get("stateful_port")
        self.wlength = component.get("wlength")
        self.rules: Any = None  # the object whose provenance methods apply (rules.py)
        self.custom_metadata = False
        self.default_rule = False  # the rules are ProvenanceType's own (set by rules.py)
        self.stateful = True
        self.sel_rules: dict[str, Any] | None = None
        self.in_postprocess = False
        self.void = True
        self.iteration_id = ""
        self.iteration_index = 0
        self.start_time = ""
        self.ignore_state_once = False
        name = getattr(pe, "name", type(pe).__name__)
        self.name = name
        self.const = recorder.constant_fields(pe, pe_id, name, self.cluster)
        self.const_json = recorder.serialiser.dumps(self.const)[1:-1]  # the fields, without braces

    # -- iterations ------------------------------------------------------------------------
    def begin(self, port: str | None, meta: Any) -> None:
        """An iteration starts: ``meta`` (stream id, iteration id, cluster) is the item's."""
        self.iteration_index += 1
        self.iteration_id = f"{self.name}-{self.recorder.ids.new()}"
        self.start_time = now()
        self.void = True
        self.ignore_state_once = False
        if meta is not None:
            self.flow.append(
                {
                    "port": port,
                    "DerivedFromDatasetID": meta[0],
                    "TriggeredByProcessIterationID": meta[1],
                    "prov_cluster": meta[2],
                    "iterationIndex": self.iteration_index,
                }
            )
            if len(self.flow) > COMPACT:
                self.flow = [self.fold(self.flow)]

    def end(self, port: str | None) -> None:
        if self.default_rule:  # ProvenanceType's own rule, without the call through the PE
            self.discard_flow()
        else:
            self.rules.apply_derivation_rule("end_invocation_event", self.void, iport=port)

    def begin_postprocess(self) -> None:
        self.begin(None, None)
        self.in_postprocess = True
        if self.history:
            self.flow = self.history + self.flow
            self.history = []

    def end_postprocess(self) -> None:
        self.in_postprocess = False

    def discard_flow(self, wlength: int | None = None) -> None:
        """Forget the flow (``wlength``: only its ``wlength`` oldest entries)."""
        if self.keep_history and not self.in_postprocess and wlength is None:
            self.history.extend(self.flow)
            if len(self.history) > COMPACT:
                self.history = [self.fold(self.history)]
        self.flow = [] if wlength is None else self.flow[wlength:]

    # -- records ---------------------------------------------------------------------------
    def derivations(self) -> list[dict[str, Any]]:
        if not self.states or self.ignore_state_once:
            return list(self.flow)
        return [*self.flow, *self.states.values()]

    def record_write(
        self, port: str, data: Any, metadata: Any, extra: dict[str, Any]
    ) -> tuple[str, str, str]:
        """The lineage record of one write; returns the ids the item travels with."""
        self.void = False
        recorder = self.recorder
        stream_id = recorder.ids.new()
        if metadata is None:
            metadata = self.rules.extractItemMetadata(data, port) if self.custom_metadata else {}
        content = metadata if isinstance(metadata, list) else [metadata]
        if not self.default_rule:  # the default rule does nothing on a write
            self.rules.apply_derivation_rule("write", False, oport=port, data=data, metadata=metadata)
        if self.sel_rules is None or selected(self.sel_rules, content):
            stream = _stream(
                content, stream_id, port, size_of(data), extra.get("format", ""), extra.get("location", "")
            )
            recorder.emit(self, self.derivations(), stream)
        ident = (stream_id, self.iteration_id, self.cluster)
        if port == self.stateful_port:  # IntermediateStatefulOut: later outputs derive from it
            self.states[port] = self._derivation(ident, port)
        return ident

    def _derivation(self, ident: tuple[str, str, str], port: str) -> dict[str, Any]:
        return {
            "port": port,
            "DerivedFromDatasetID": ident[0],
            "TriggeredByProcessIterationID": ident[1],
            "prov_cluster": ident[2],
            "iterationIndex": self.iteration_index,
        }

    def fold(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """A state record deriving from ``entries``; returns the derivation of it."""
        stream_id = self.recorder.ids.new()
        stream = _stream([{}], stream_id, STATE_PORT, 0)
        self.recorder.emit(self, entries, stream)
        return self._derivation((stream_id, self.iteration_id, self.cluster), STATE_PORT)

    # -- what PE code calls (through ProvenanceType / GenericPE) ----------------------------
    def update_prov_state(
        self,
        lookupterm: Any,
        data: Any = None,
        location: str = "",
        format: str = "",
        metadata: Any = None,
        ignore_inputs: bool = False,
        ignore_state: bool = True,
        stateless: bool = False,
        **kwargs: Any,
    ) -> None:
        """A state record under ``lookupterm``, deriving from the flow (and the previous
        state of that term unless ``ignore_state``); outputs derive from it until it is
        replaced or discarded. ``ignore_inputs``: the flow is then discarded (the state
        summarises it)."""
        self.void = False if stateless else self.void
        key = str(lookupterm)
        entries = list(self.flow)
        previous = self.states.get(key)
        if previous is not None and not ignore_state:
            entries.append(previous)
        stream_id = self.recorder.ids.new()
        content = metadata if isinstance(metadata, list) else [metadata or {}]
        stream = _stream(content, stream_id, STATE_PORT, size_of(data), format, location)
        self.recorder.emit(self, entries, stream)
        self.states[key] = self._derivation((stream_id, self.iteration_id, self.cluster), STATE_PORT)
        if ignore_inputs:
            self.flow = []

    def discard_state(self) -> None:
        self.states.clear()

    def remove_derivation(self, **kwargs: Any) -> None:
        """Drop the flow entries matching every ``key=value`` given (e.g. ``port='input'``)."""
        self.flow = [d for d in self.flow if any(d.get(k) != v for k, v in kwargs.items())]


def _stream(
    content: Any, ident: str, port: str, size: int, fmt: str = "", location: str = ""
) -> dict[str, Any]:
    """A record's ``streams`` entry, with the original's fields."""
    return {
        "content": content,
        "id": ident,
        "format": fmt,
        "location": location,
        "annotations": [],
        "port": port,
        "size": size,
    }
