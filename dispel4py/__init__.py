"""dispel4py: write a stream-based workflow once, run it on any mapping.

``dispel4py.run(graph, inputs, mapping="multi", num=4)`` runs a workflow from Python;
``for pe, output, item in dispel4py.stream(graph, ...)`` gives its results while it runs;
``dispel4py <mapping> <workflow>`` runs it from the command line.
"""

from __future__ import annotations

from typing import Any

__version__ = "3.0.0"

__all__ = [
    "__version__",
    "run",
    "stream",
    "RunResult",
    "InstanceStats",
    "Dispel4PyError",
    "UsageError",
    "GraphError",
    "InputError",
    "MappingUnavailable",
    "TransportError",
    "WorkflowFailed",
    "WorkerDied",
]

_LAZY = {
    "run": "dispel4py.api",
    "stream": "dispel4py.streaming",
    "RunResult": "dispel4py.engine.result",
    "InstanceStats": "dispel4py.engine.result",
    "Dispel4PyError": "dispel4py.errors",
    "UsageError": "dispel4py.errors",
    "GraphError": "dispel4py.errors",
    "InputError": "dispel4py.errors",
    "MappingUnavailable": "dispel4py.errors",
    "TransportError": "dispel4py.errors",
    "WorkflowFailed": "dispel4py.errors",
    "WorkerDied": "dispel4py.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dispel4py' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
