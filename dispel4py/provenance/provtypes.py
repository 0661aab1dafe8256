"""The original's provenance types: ``ProvenanceType`` (its methods, called from PE code,
act on the instance's lineage when provenance is on and do nothing when it is off) and the
pattern types (``AccumulateFlow``, ``SlideFlow``, ...), which are their
``apply_derivation_rule``, as in the original. ``compat.py`` exports them under the
original's module name."""

from __future__ import annotations

from typing import Any

from dispel4py.base import IterativePE, SimpleFunctionPE
from dispel4py.core import GenericPE, prov_context

__all__ = [
    "ProvenanceType",
    "AccumulateFlow",
    "Nby1Flow",
    "SlideFlow",
    "ASTGrouped",
    "SingleInvocationFlow",
    "AccumulateStateTrace",
    "IntermediateStatefulOut",
    "ForceStateless",
    "ProvenanceSimpleFunctionPE",
    "ProvenanceIterativePE",
]


def _context(pe: Any) -> Any:
    """The lineage context of ``pe`` (a view carries its own), or None when not recorded."""
    return pe.__dict__.get("_prov_ctx") or prov_context(pe)


class ProvenanceType(GenericPE):
    """Base of the original's provenance types. Subclass it and override
    ``apply_derivation_rule`` / ``extractItemMetadata``, or call its methods from PE code;
    they act on the instance's lineage when provenance is on, and do nothing when it is off.
    Default rule: an output derives from the inputs of the invocation that wrote it."""

    PROV_PATH = "./"
    REPOS_URL = ""
    PROV_EXPORT_URL = ""
    PROV_BEARER_TOKEN = ""
    SAVE_MODE_SERVICE = "service"
    SAVE_MODE_FILE = "file"
    SAVE_MODE_SENSOR = "sensor"
    BULK_SIZE = 1
    send_prov_to_sensor = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        GenericPE.__init__(self)
        self.parameters: dict[str, Any] = {}
        self.ns: dict[str, Any] = {}

    def pe_init(self, *args: Any, **kwargs: Any) -> None:
        """Set up provenance state: the recorder does it (``context.py``)."""

    def addNamespacePrefix(self, prefix: str, url: str) -> None:
        self.ns[prefix] = url

    def extractItemMetadata(self, data: Any, port: str) -> Any:
        """The metadata of an item written on ``port`` (a record's stream ``content``)."""
        return {}

    def apply_derivation_rule(
        self,
        event: str,
        voidInvocation: bool,
        oport: Any = None,
        iport: Any = None,
        data: Any = None,
        metadata: Any = None,
    ) -> None:
        """Called on each ``'write'`` and at each ``'end_invocation_event'``: by default the
        inputs are forgotten at the end of each invocation."""
        if event == "end_invocation_event":
            self.discardInFlow()

    def update_prov_state(self, lookupterm: Any, data: Any = None, *args: Any, **kwargs: Any) -> None:
        """A state record under ``lookupterm``: later outputs derive from it."""
        context = _context(self)
        if context is not None:
            context.update_prov_state(lookupterm, data, *args, **kwargs)

    def getProvStateObjectId(self, name: Any) -> Any:
        context = _context(self)
        state = context.states.get(str(name)) if context is not None else None
        return state[1] if state else None  # (port, stream id, ...): context.Derivation

    def setStateDerivations(self, terms: Any) -> None:
        """Outputs derive from the states named in ``terms`` only."""
        context = _context(self)
        if context is not None:
            keep = {str(t) for t in terms}
            context.states = {k: v for k, v in context.states.items() if k in keep}

    def discardState(self) -> None:
        context = _context(self)
        if context is not None:
            context.discard_state()

    def discardInFlow(self, wlength: Any = None, discardState: bool = False) -> None:
        """Forget the inputs (``wlength``: only the ``wlength`` oldest); ``discardState``:
        the states too."""
        context = _context(self)
        if context is not None:
            context.discard_flow(wlength)
            if discardState:
                context.discard_state()

    def ignorePastFlow(self) -> None:
        """Outputs derive only from this invocation's inputs."""
        context = _context(self)
        if context is not None:
            context.flow = [d for d in context.flow if d[4] == context.iteration_index]  # iterationIndex

    def ignoreState(self) -> None:
        """Outputs of this invocation do not derive from the states."""
        context = _context(self)
        if context is not None:
            context.ignore_state_once = True

    def removeDerivation(self, **kwargs: Any) -> None:
        context = _context(self)
        if context is not None:
            context.remove_derivation(**kwargs)


class AccumulateFlow(ProvenanceType):
    """Output depends on a sequence of inputs (e.g. a periodic average): inputs accumulate
    until an invocation writes."""

    def apply_derivation_rule(self, event: str, voidInvocation: bool, *args: Any, **kwargs: Any) -> None:
        if event == "end_invocation_event" and not voidInvocation:
            self.discardInFlow()


class Nby1Flow(AccumulateFlow):
    """Output depends on all input ports in lock-step: inputs accumulate until a write."""


class SlideFlow(ProvenanceType):
    """Output depends on a sliding window of the last ``wlength`` inputs (the component's
    ``wlength`` in the config, or the PE's ``wlength`` attribute; default 1)."""

    def apply_derivation_rule(self, event: str, voidInvocation: bool, *args: Any, **kwargs: Any) -> None:
        context = _context(self)
        if event == "end_invocation_event" and context is not None:
            window = int(context.wlength or 1)
            if len(context.flow) >= window:
                self.discardInFlow(len(context.flow) - window + 1)


class ASTGrouped(ProvenanceType):
    """A stateful operator with grouping rules: outputs derive from their input and the
    states the PE records (``update_prov_state``)."""


class SingleInvocationFlow(ProvenanceType):
    """Stateless: output depends on the current input only (states are forgotten)."""

    def apply_derivation_rule(self, event: str, voidInvocation: bool, *args: Any, **kwargs: Any) -> None:
        if event == "end_invocation_event":
            self.discardInFlow(discardState=True)


class AccumulateStateTrace(ProvenanceType):
    """Tracks updates of intermediate results written after a sequence of inputs: outputs
    derive from their input and the states recorded (``update_prov_state``)."""


class IntermediateStatefulOut(ProvenanceType):
    """Stateful, with distinct but interdependent outputs: what is written on the stateful
    port (``s-prov:stateful-port``) is a state later outputs derive from."""


class ForceStateless(ProvenanceType):
    """Output considered dependent on the current input only, whatever the PE records."""

    def apply_derivation_rule(self, event: str, voidInvocation: bool, *args: Any, **kwargs: Any) -> None:
        if event == "write":
            self.ignoreState()
        elif event == "end_invocation_event":
            self.discardInFlow(discardState=True)


class ProvenanceSimpleFunctionPE(ProvenanceType, SimpleFunctionPE):
    """``SimpleFunctionPE(compute_fn, params)`` with the provenance type's methods."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        SimpleFunctionPE.__init__(self, *args, **kwargs)
        self.parameters = {}
        self.ns = {}


class ProvenanceIterativePE(ProvenanceType, IterativePE):
    """``IterativePE`` with the provenance type's methods."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        IterativePE.__init__(self)
        self.parameters = {}
        self.ns = {}
