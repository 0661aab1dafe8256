"""Workflow inputs: ``-i N``, ``-d JSON``, ``-f FILE`` and the library's ``inputs=`` dict.

Keys may be PE objects, PE names or PE ids; values are a number of ``{}`` invocations
(int >= 0) or a list of input dicts, each passed verbatim to ``process``. Everything is
normalised to ``{pe_id: int | list}`` before planning, so that plans can be sent to other
processes (the original lost object keys in MPI broadcasts).

A PE that is the destination of a connection may be fed too (the original's bug B11 made
that a TypeError): its dicts are processed like items arriving on its inputs, so each dict
must name one or more of its declared inputs, and it cannot take a number of ``{}``
iterations (``process({})`` is not an item on any input). Source PEs get their dicts
verbatim, whatever the keys, as they always have. All of this is checked here, before
anything runs, so a mistake is a usage error (exit 2) and never a PE failure.
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
    """Map keys to PE ids and check the values (``graph`` already flattened)."""
    pes = [n.obj for n in graph.nodes]
    by_id = {pe.id: pe for pe in pes}
    by_name: dict[str, GenericPE] = {}
    for pe in pes:
        by_name.setdefault(pe.name, pe)
    fed = {id(dst) for _, _, dst, _ in graph.connections}
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
        checked = _check_value(pe, value)
        if id(pe) in fed:
            _check_non_source(pe, checked, [p.id for p in pes if id(p) not in fed])
        result[pe.id] = checked
    return result


def _example(pe: GenericPE) -> str:
    """A list of input dicts for ``pe``, as it would be written in ``-d``."""
    port = next(iter(pe.inputconnections), "input")
    return f'{{"{pe.id}": [{{"{port}": 5}}]}}'


def _forms(pe: GenericPE) -> str:
    """The two accepted forms of an input value, spelled for ``pe``."""
    return f'a number of iterations ({{"{pe.id}": 3}}) or a list of input dicts ({_example(pe)})'


def _check_value(pe: GenericPE, value: Any) -> InputValue:
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise InputError(f"input for {pe.id} must be {_forms(pe)}, not {type(value).__name__} {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InputError(f"input for {pe.id} must not be negative (got {value})")
        return value
    for position, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise InputError(
                f"input for {pe.id} has {type(entry).__name__} {entry!r} at position {position} of "
                f"its list, not a dict; give {_forms(pe)}"
            )
    return list(value)


def _check_non_source(pe: GenericPE, value: InputValue, sources: list[str]) -> None:
    """``pe`` has connected inputs: its dicts must be items on those inputs."""
    ports = list(pe.inputconnections)
    listed = ", ".join(ports)
    example = _example(pe)
    if isinstance(value, int):
        if value:
            raise InputError(
                f"{pe.id} has connected inputs ({listed}), so it cannot run {value} iteration"
                f"{'' if value == 1 else 's'}: give it a list of input dicts naming its inputs, "
                f"e.g. {example}, or give the iterations to a source PE "
                f"({', '.join(sources) or 'none'})"
            )
        return
    for position, entry in enumerate(value):
        if not entry:
            raise InputError(
                f"input for {pe.id} has an empty dict at position {position} of its list: "
                f"{pe.id} has connected inputs, so each dict must name one or more of its "
                f"inputs ({listed}), e.g. {example}"
            )
        for port in entry:
            if port not in pe.inputconnections:
                raise InputError(
                    f"input dict {position} for {pe.id} names '{port}', which is not an input of "
                    f"{pe.id}{did_you_mean(str(port), ports)}; inputs of {pe.id} are: {listed} "
                    f"(e.g. {example})"
                )
