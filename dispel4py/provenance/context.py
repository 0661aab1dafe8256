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

from time import time_ns
from typing import Any

from .lineage_json import DERIVATION_FIELDS, InstanceFormat, plain
from .records import selected, size_of

__all__ = ["InstanceContext", "Derivation", "COMPACT", "STATE_PORT"]

# (port, stream id, iteration id, cluster, iteration index): lineage_json.DERIVATION_FIELDS
Derivation = tuple[Any, str, str, str, int]

COMPACT = 256
STATE_PORT = "_d4p_state"


class InstanceContext:
    def __init__(self, recorder: Any, key: int, pe: Any, pe_id: str, component: dict[str, Any]) -> None:
        self.recorder = recorder
        self.pe = pe
        self.pe_id = pe_id
        self.cluster = component.get("cluster") or pe_id
        self.flow: list[Derivation] = []
        self.history: list[Derivation] = []
        self.states: dict[str, Derivation] = {}
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
        self.start_ns = time_ns()
        self.ignore_state_once = False
        self.fast = False  # writes take the short path (set by seal())
        name = getattr(pe, "name", type(pe).__name__)
        self.name = name
        self.iteration_prefix = f"{name}-"
        self._iteration_ids = f"{name}-{recorder.prefix}"  # + the process's next count
        self._count = recorder.counter
        self.key = key  # what its records name it by (lineage_json.Pending)
        self.format: InstanceFormat | None = None  # how they are written (set by seal())

    def seal(self) -> None:
        """The rules are known: the fields every record of the instance shares, as JSON
        once, and whether its writes can take the short path (``RecordingWriter``)."""
        const = self.recorder.constant_fields(self.pe, self.pe_id, self.name, self.cluster)
        const["stateful"] = self.stateful
        self.format = InstanceFormat(
            self.pe_id,
            self.recorder.serialiser.dumps(const)[1:-1],  # without braces
            plain(self.recorder.prefix) and plain(self.iteration_prefix),
            (*self.pe.inputconnections, *self.pe.outputconnections, STATE_PORT),
        )
        self.fast = (
            self.default_rule
            and self.sel_rules is None
            and not self.custom_metadata
            and self.stateful_port is None
        )

    # -- iterations ------------------------------------------------------------------------
    def begin(self, port: str | None, meta: Any) -> None:
        """An iteration starts: ``meta`` (stream id, iteration id, cluster) is the item's."""
        self.iteration_index += 1
        self.iteration_id = ""  # made when first needed (iteration())
        self.start_ns = time_ns()
        self.void = True
        self.ignore_state_once = False
        if meta is not None:
            # a new list, never appended to: a pending record may hold the old one
            self.flow = [*self.flow, (port, meta[0], meta[1], meta[2], self.iteration_index)]
            if len(self.flow) > COMPACT:
                self.flow = [self.fold(self.flow)]

    def iteration(self) -> str:
        """The id of the iteration running (made on first use: most iterations of a PE
        that writes rarely never need one)."""
        if not self.iteration_id:
            self.iteration_id = self._iteration_ids + str(self._count())
        return self.iteration_id

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
    def derivations(self) -> list[Derivation]:
        if not self.states or self.ignore_state_once:
            return self.flow
        return [*self.flow, *self.states.values()]

    def record_write(
        self, port: str, data: Any, metadata: Any, extra: dict[str, Any]
    ) -> tuple[str, str, str]:
        """The lineage record of one write; returns the ids the item travels with."""
        self.void = False
        recorder = self.recorder
        stream_id = recorder.next_id()
        if metadata is None:
            metadata = self.rules.extractItemMetadata(data, port) if self.custom_metadata else {}
        content = metadata if isinstance(metadata, list) else [metadata]
        if not self.default_rule:  # the default rule does nothing on a write
            self.rules.apply_derivation_rule("write", False, oport=port, data=data, metadata=metadata)
        iteration = self.iteration()
        if self.sel_rules is None or selected(self.sel_rules, content):
            recorder.add(
                (
                    self.key,
                    iteration,
                    self.iteration_index,
                    self.start_ns,
                    time_ns(),
                    self.derivations(),
                    stream_id,
                    port,
                    size_of(data),
                    recorder.json_of(content),
                    recorder.json_of(extra["format"]) if "format" in extra else None,
                    recorder.json_of(extra["location"]) if "location" in extra else None,
                )
            )
        ident = (stream_id, iteration, self.cluster)
        if port == self.stateful_port:  # IntermediateStatefulOut: later outputs derive from it
            self.states[port] = self._derivation(ident, port)
        return ident

    def _derivation(self, ident: tuple[str, str, str], port: str) -> Derivation:
        return (port, ident[0], ident[1], ident[2], self.iteration_index)

    def _state_record(
        self, entries: list[Derivation], content: Any, data: Any, fmt: Any, loc: Any
    ) -> Derivation:
        """A state record (port ``_d4p_state``) deriving from ``entries``; its derivation."""
        recorder = self.recorder
        stream_id = recorder.next_id()
        iteration = self.iteration()
        recorder.add(
            (
                self.key,
                iteration,
                self.iteration_index,
                self.start_ns,
                time_ns(),
                entries,
                stream_id,
                STATE_PORT,
                size_of(data) if data is not None else 0,
                None if content is None else recorder.json_of(content),
                None if not fmt else recorder.json_of(fmt),
                None if not loc else recorder.json_of(loc),
            )
        )
        return self._derivation((stream_id, iteration, self.cluster), STATE_PORT)

    def fold(self, entries: list[Derivation]) -> Derivation:
        """A state record deriving from ``entries``; returns the derivation of it."""
        return self._state_record(entries, None, None, "", "")

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
        content = metadata if isinstance(metadata, list) else [metadata or {}]
        self.states[key] = self._state_record(entries, content, data, format, location)
        if ignore_inputs:
            self.flow = []

    def discard_state(self) -> None:
        self.states.clear()

    def remove_derivation(self, **kwargs: Any) -> None:
        """Drop the flow entries matching every ``key=value`` given (e.g. ``port='input'``)."""
        self.flow = [d for d in self.flow if any(_field(d, k) != v for k, v in kwargs.items())]


def _field(derivation: Derivation, name: str) -> Any:
    try:
        return derivation[DERIVATION_FIELDS.index(name)]
    except ValueError:
        return None
