"""The original's ``dispel4py.provenance`` names, so that workflows using them run unchanged.

Provenance is **not recorded** by this version of dispel4py. Workflows written for the
original do ``from dispel4py.provenance import *``, define provenance types
(``class MyType(ProvenanceType)``) and call ``configure_prov_run(graph, ...)``; here they
import, and run exactly as without provenance: ``configure_prov_run``, ``injectProv``,
``attachProvenanceRecorderPE`` and ``update_prov_run`` leave the graph as it is and log one
warning (once per process, rank 0 only under MPI) saying that provenance is not recorded.
PE code calling the provenance methods of ``ProvenanceType`` (``update_prov_state``,
``discardInFlow``, ``write(..., metadata=...)``) runs, and they do nothing.

``import *`` also gives what the original's module happened to export (``os``, ``json``,
``datetime``, ``WorkflowGraph``, ``GenericPE``, ``SimpleFunctionPE``, …), which some
workflows rely on without importing them themselves.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import inspect
import json
import logging
import os
import socket
import sys
import traceback
import uuid
from copy import deepcopy
from itertools import chain
from typing import Any

from dispel4py.base import IterativePE, SimpleFunctionPE
from dispel4py.core import NAME, GenericPE
from dispel4py.utils import make_hash, total_size
from dispel4py.workflow_graph import WorkflowGraph

__all__ = [
    # provenance types and PEs
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
    "PassThroughPE",
    "ProvenanceRecorder",
    "ProvenanceRecorderToFile",
    "ProvenanceRecorderToFileBulk",
    "ProvenanceRecorderToService",
    "ProvenanceRecorderToServiceBulk",
    "MyProvenanceRecorderWithFeedback",
    "CommandLineInputs",
    # functions
    "configure_prov_run",
    "injectProv",
    "attachProvenanceRecorderPE",
    "update_prov_run",
    "init_provenance_config",
    "load_provenance_config",
    "create_provenance_argparser",
    "clean_empty",
    "getUniqueId",
    "num",
    "total_size",
    "make_hash",
    # constants
    "INPUT_NAME",
    "OUTPUT_DATA",
    "OUTPUT_METADATA",
    "SPROV_CL_D4PY_INPUT",
    "namespaces",
    "provclusters",
    "prov_save_mode",
    # what the original's module exported by importing it
    "argparse",
    "collections",
    "datetime",
    "inspect",
    "json",
    "os",
    "socket",
    "sys",
    "traceback",
    "uuid",
    "deepcopy",
    "chain",
    "Any",
    "NAME",
    "GenericPE",
    "IterativePE",
    "SimpleFunctionPE",
    "WorkflowGraph",
]

_log = logging.getLogger("dispel4py.provenance")
_warned = False

INPUT_NAME = "input"
OUTPUT_DATA = "output"
OUTPUT_METADATA = "provenance"
SPROV_CL_D4PY_INPUT = {
    "mime-type": "text/json",
    "name": "dispel4py_input",
    "prov:type": "provone:Data",
    "value": "encoded_json",
}
namespaces: dict[str, Any] = {}
provclusters: dict[str, Any] = {}
prov_save_mode: dict[str, Any] = {}


def _not_recorded(call: str) -> None:
    """Say once per process (rank 0 only under MPI) that provenance is not recorded."""
    global _warned
    if _warned:
        return
    _warned = True
    rank = os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0"
    if rank == "0":
        _log.warning(
            "%s: provenance is not recorded by this version of dispel4py; the workflow runs "
            "unchanged, without provenance",
            call,
        )


# -- helpers the original exported ------------------------------------------------------------------
def clean_empty(d: Any) -> Any:
    """``d`` without the ``None``/empty values, recursively through dicts and lists."""
    if isinstance(d, list):
        return [v for v in (clean_empty(v) for v in d) if v]
    if isinstance(d, dict):
        return {k: v for k, v in ((k, clean_empty(v)) for k, v in d.items()) if v}
    return d


def getUniqueId(data: Any = None) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid1()}"


def num(s: Any) -> int | float:
    try:
        return int(s)
    except (TypeError, ValueError):
        return float(s)


def load_provenance_config(configfile: str) -> Any:
    with open(configfile, encoding="utf-8") as handle:
        return json.load(handle)


def create_provenance_argparser() -> argparse.ArgumentParser:
    """The original's ``--provenance-*`` options (accepted and ignored by the CLI)."""
    parser = argparse.ArgumentParser(description="Provenance options (not recorded in this version).")
    for option, dest in (
        ("--provenance-repository-url", "prov_repo_url"),
        ("--provenance-export-url", "prov_export_url"),
        ("--provenance-path", "prov_path"),
        ("--provenance-bulk-size", "prov_bulk_size"),
        ("--provenance-runid", "prov_runid"),
        ("--provenance-userid", "prov_userid"),
        ("--provenance-bearer-token", "prov_bearer_token"),
    ):
        parser.add_argument(option, dest=dest, nargs="?")
    return parser


class CommandLineInputs:
    """The original's holder of command-line provenance settings (kept for imports)."""

    inputs: dict[str, Any] = {}
    provenanceCommandLineConfigPresent = False
    inline_prov_config: dict[str, Any] = {}
    inline_graph: Any = None
    module: Any = None


def init_provenance_config(args: Any = None) -> tuple[bool, bool]:
    """Provenance configuration from the command line: none (provenance is not recorded)."""
    _not_recorded("init_provenance_config()")
    return False, False


# -- provenance types: PEs with the original's provenance methods, which do nothing ----------------
class ProvenanceType(GenericPE):
    """Base of the original's provenance types. Subclass it and override its hooks as for
    the original; here the hooks are never called and the methods PE code may call
    (``update_prov_state``, ``discardInFlow``, ``ignorePastFlow``, …) do nothing."""

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
        """Set up provenance state: nothing to set up."""

    def addNamespacePrefix(self, prefix: str, url: str) -> None:
        self.ns[prefix] = url

    def extractItemMetadata(self, data: Any, port: str) -> Any:
        return {}

    def apply_derivation_rule(self, event: str, voidInvocation: bool, *args: Any, **kwargs: Any) -> None:
        """Called by the original on writes and at the end of invocations; never here."""

    def update_prov_state(self, lookupterm: Any, data: Any, *args: Any, **kwargs: Any) -> None:
        """Would record ``data`` in the provenance state: not recorded."""

    def getProvStateObjectId(self, name: Any) -> None:
        return None

    def setStateDerivations(self, terms: Any) -> None:
        pass

    def discardState(self) -> None:
        pass

    def discardInFlow(self, wlength: Any = None, discardState: bool = False) -> None:
        pass

    def ignorePastFlow(self) -> None:
        pass

    def ignoreState(self) -> None:
        pass

    def removeDerivation(self, **kwargs: Any) -> None:
        pass


class AccumulateFlow(ProvenanceType):
    """Output depends on a sequence of inputs (e.g. a periodic average)."""


class Nby1Flow(ProvenanceType):
    """Output depends on all input ports in lock-step."""


class SlideFlow(ProvenanceType):
    """Output depends on a sliding window."""


class ASTGrouped(ProvenanceType):
    """A stateful operator with grouping rules."""


class SingleInvocationFlow(ProvenanceType):
    """Stateless: output depends on the current input only."""


class AccumulateStateTrace(ProvenanceType):
    """Tracks updates of intermediate results written after a sequence of inputs."""


class IntermediateStatefulOut(ProvenanceType):
    """Stateful, with distinct but interdependent outputs."""


class ForceStateless(ProvenanceType):
    """Output considered dependent on the current input only."""


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


class PassThroughPE(IterativePE):
    def _process(self, data: Any) -> Any:
        return data


class ProvenanceRecorder(GenericPE):
    """Base of the original's recorder PEs (input ``metadata``, output ``feedback``)."""

    INPUT_NAME = "metadata"
    REPOS_URL = ""

    def __init__(self, name: str = "ProvenanceRecorder", toW3C: bool = False) -> None:
        GenericPE.__init__(self)
        self.porttopemap: dict[str, str] = {}
        self.convertToW3C = toW3C
        self._add_output("feedback")
        self._add_input(ProvenanceRecorder.INPUT_NAME)
        self.name = name


class ProvenanceRecorderToFile(ProvenanceRecorder):
    def __init__(self, name: str = "ProvenanceRecorderToFile", toW3C: bool = False) -> None:
        ProvenanceRecorder.__init__(self, name, toW3C)


class ProvenanceRecorderToFileBulk(ProvenanceRecorder):
    def __init__(self, name: str = "ProvenanceRecorderToFileBulk", toW3C: bool = False) -> None:
        ProvenanceRecorder.__init__(self, name, toW3C)


class ProvenanceRecorderToService(ProvenanceRecorder):
    def __init__(self, name: str = "ProvenanceRecorderToService", toW3C: bool = False) -> None:
        ProvenanceRecorder.__init__(self, name, toW3C)


class ProvenanceRecorderToServiceBulk(ProvenanceRecorder):
    def __init__(self, name: str = "ProvenanceRecorderToServiceBulk", toW3C: bool = False) -> None:
        ProvenanceRecorder.__init__(self, name, toW3C)


class MyProvenanceRecorderWithFeedback(ProvenanceRecorder):
    def __init__(self, toW3C: bool = False) -> None:
        ProvenanceRecorder.__init__(self, "MyProvenanceRecorderWithFeedback", toW3C)


# -- configuring a run: the graph is left unchanged ---------------------------------------------
def configure_prov_run(graph: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Would make ``graph`` provenance-aware: leaves it unchanged and warns once.

    Returns the run id given (``runId=`` or ``"s-prov:run-id"`` in ``sprovConfig``), else
    ``None``.
    """
    _not_recorded("configure_prov_run()")
    config = kwargs.get("sprovConfig") or {}
    return kwargs.get("runId") or (config.get("s-prov:run-id") if isinstance(config, dict) else None)


def injectProv(object: Any, provType: Any = None, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Would change the PEs' classes to provenance types: leaves them unchanged."""
    _not_recorded("injectProv()")
    return {}


def attachProvenanceRecorderPE(graph: Any, provRecorderClass: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Would connect recorder PEs to ``graph``: returns it unchanged."""
    _not_recorded("attachProvenanceRecorderPE()")
    return graph


def update_prov_run(runId: Any = None, save_mode: str = "file", dic: Any = None) -> None:
    """Would update the stored run record: nothing is stored."""
    _not_recorded("update_prov_run()")
