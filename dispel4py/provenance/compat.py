"""The original's ``dispel4py.provenance`` names: provenance types, their methods, and
``configure_prov_run``, so that the original's provenance workflows run unchanged.

* ``configure_prov_run(graph, ..., sprovConfig={...})`` records the configuration on the
  graph (``graph.provenance_config``); provenance is then recorded when the graph runs
  (CLI, ``dispel4py.run``), see ``docs/provenance.md``. No class is changed and no PE is
  wrapped: ``injectProv`` and ``attachProvenanceRecorderPE`` leave the graph as it is.
* The provenance types (``ProvenanceType``, ``AccumulateFlow``, ...) are in
  ``provtypes.py``; this module exports them with the rest of the original's names.

``import *`` also gives what the original's module happened to export (``os``, ``json``,
``datetime``, ``WorkflowGraph``, ``GenericPE``, ``SimpleFunctionPE``, ...), which some
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

from .provtypes import (
    AccumulateFlow,
    AccumulateStateTrace,
    ASTGrouped,
    ForceStateless,
    IntermediateStatefulOut,
    Nby1Flow,
    ProvenanceIterativePE,
    ProvenanceSimpleFunctionPE,
    ProvenanceType,
    SingleInvocationFlow,
    SlideFlow,
)

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
    """The original's ``--provenance-*`` options (the CLI has them as its own options)."""
    parser = argparse.ArgumentParser(description="Provenance options.")
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
    """The original read ``--provenance-*`` from ``sys.argv`` here; the CLI does it itself
    (``docs/provenance.md``), so there is nothing to read: ``(False, False)``."""
    return False, False


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


# -- configuring a run ----------------------------------------------------------------------
_ARG_KEYS = {
    "username": "provone:User",
    "workflowId": "s-prov:workflowId",
    "workflowName": "s-prov:workflowName",
    "workflowType": "s-prov:workflowType",
    "description": "s-prov:description",
    "runId": "s-prov:run-id",
    "sessionId": "s-prov:session-id",
    "system_id": "s-prov:system-id",
    "componentsType": "s-prov:componentsType",
    "save_mode": "s-prov:save-mode",
    "sel_rules": "s-prov:sel-rules",
}


def configure_prov_run(graph: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Ask for provenance when ``graph`` runs: the configuration (``sprovConfig`` and the
    keyword arguments of the original: ``username``, ``workflowId``, ``runId``,
    ``componentsType``, ``save_mode``, ``sel_rules``, ...) is kept on the graph as
    ``graph.provenance_config`` and checked when the run starts. The graph is otherwise
    unchanged. Returns the run id given, else ``None`` (one is made when the run starts)."""
    config = dict(kwargs.get("sprovConfig") or {})
    for arg, key in _ARG_KEYS.items():
        if kwargs.get(arg) not in (None, "", {}):
            config.setdefault(key, kwargs[arg])
    if graph is not None:
        graph.provenance_config = config
    return config.get("s-prov:run-id")


def injectProv(object: Any, provType: Any = None, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The original changed the PEs' classes here; types apply without that
    (``s-prov:componentsType``, ``rules.py``): nothing to do."""
    return {}


def attachProvenanceRecorderPE(graph: Any, provRecorderClass: Any = None, *args: Any, **kwargs: Any) -> Any:
    """The original connected recorder PEs to ``graph``; records are written by the worker
    processes themselves: returns ``graph`` unchanged."""
    return graph


def update_prov_run(runId: Any = None, save_mode: str = "file", dic: Any = None) -> None:
    """The original updated the stored run record; the ``workflow_run`` record is written
    once, when the run starts."""
