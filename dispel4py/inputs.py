"""Workflow inputs: ``-i N``, ``-d JSON``, ``-f FILE`` and the library's ``inputs=`` dict.

Keys may be PE objects, PE names or PE ids; values are a number of ``{}`` invocations
(int >= 0) or a list of input dicts, each passed verbatim to ``process``. Everything is
normalised to ``{pe_id: int | list}`` before planning, so that plans can be sent to other
processes (the original lost object keys in MPI broadcasts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from dispel4py.core import GenericPE
from dispel4py.errors import InputError, did_you_mean
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["parse_cli_inputs", "normalise_inputs", "roots"]

InputValue = int | list[Any]


def parse_cli_inputs(data: str | None, file: str | None) -> dict[str, Any] | None:
    """The ``-f`` file (preferred) or ``-d`` JSON text as a dict; ``None`` when neither."""
    if file is not None:
        if not os.path.isfile(file):
            raise InputError(f"input file '{file}' (-f) does not exist")
        with open(file, encoding="utf-8") as f:
            text, origin = f.read(), f"input file '{file}' (-f)"
    elif data is not None:
        text, origin = data, "-d"
    else:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{origin} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"(character {exc.pos}); example: -d '{{\"TestProducer0\": 5}}'"
        ) from None
    if not isinstance(value, dict):
        raise InputError(f"{origin} must be a JSON object mapping PE names or ids to inputs")
    return value


def roots(graph: WorkflowGraph) -> list[GenericPE]:
    """PEs with no incoming connection, in insertion order."""
    fed = {id(dst) for _, _, dst, _ in graph.connections}
    return [n.obj for n in graph.nodes if id(n.obj) not in fed]


def normalise_inputs(graph: WorkflowGraph, inputs: Mapping[Any, Any] | None) -> dict[str, InputValue]:
    """Map keys to PE ids and check the values."""
    pes = [n.obj for n in graph.nodes]
    by_id = {pe.id: pe for pe in pes}
    by_name: dict[str, GenericPE] = {}
    for pe in pes:
        by_name.setdefault(pe.name, pe)
    result: dict[str, InputValue] = {}
    for key, value in (inputs or {}).items():
        if isinstance(key, GenericPE):
            pe = key if key.id in by_id and by_id[key.id] is key else None
            label = repr(key)
        else:
            pe = by_id.get(str(key)) or by_name.get(str(key))
            label = f"'{key}'"
        if pe is None:
            choices = sorted(set(by_id) | set(by_name))
            raise InputError(
                f"input key {label} names no PE of this workflow"
                f"{did_you_mean(str(getattr(key, 'id', key)), choices)}; "
                f"PEs are: {', '.join(by_id)}"
            )
        result[pe.id] = _check_value(pe.id, value)
    return result


def _check_value(pe_id: str, value: Any) -> InputValue:
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise InputError(
            f"input for {pe_id} must be a number of iterations or a list of input dicts, "
            f"not {type(value).__name__} {value!r}"
        )
    if isinstance(value, int) and value < 0:
        raise InputError(f"input for {pe_id} must not be negative (got {value})")
    return list(value) if isinstance(value, tuple) else value
