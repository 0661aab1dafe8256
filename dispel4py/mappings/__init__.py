"""The mapping registry: built-ins from a lazy name table, third parties by entry point.

A third-party package adds a mapping with an entry point in the group
``dispel4py.mappings`` pointing at a :class:`dispel4py.mappings.base.Mapping` subclass.
Nothing here imports a mapping's module until it is asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from dispel4py.errors import MappingUnavailable, did_you_mean
from dispel4py.mappings.base import Mapping

__all__ = [
    "ALIASES",
    "BUILTIN",
    "MappingInfo",
    "available_mappings",
    "get_mapping",
    "mapping_status",
    "plugins",
    "resolve_name",
]


@dataclass(frozen=True)
class MappingInfo:
    name: str
    target: str | None  # "module:Class", or None while not built yet
    summary: str
    extra: str | None = None  # pip extra that provides the dependencies
    modules: tuple[str, ...] = ()  # importable modules the mapping needs


_BUILTIN = [
    MappingInfo("simple", "dispel4py.mappings.simple:SimpleMapping", "sequential, in this process"),
    MappingInfo(
        "multi",
        "dispel4py.mappings.processes.multi:MultiMapping",
        "worker processes on this machine (pipes)",
        None,
        ("multiprocess",),
    ),
    MappingInfo(
        "zmq_multi",
        "dispel4py.mappings.processes.zmq_multi:ZmqMultiMapping",
        "worker processes on this machine (ZeroMQ)",
        "zmq",
        ("multiprocess", "zmq"),
    ),
    MappingInfo(
        "mpi",
        "dispel4py.mappings.mpi.mapping:MPIMapping",
        "MPI ranks: mpiexec -n N dispel4py mpi ...",
        "mpi",
        ("mpi4py",),
    ),
    MappingInfo(
        "dyn_multi",
        "dispel4py.mappings.processes.dynamic:DynMultiMapping",
        "dynamic work queue on this machine",
        None,
        ("multiprocess",),
    ),
    MappingInfo(
        "dyn_auto_multi",
        "dispel4py.mappings.processes.dynamic:DynAutoMultiMapping",
        "dynamic work queue with autoscaling",
        None,
        ("multiprocess",),
    ),
    MappingInfo(
        "dyn_redis",
        "dispel4py.mappings.redis.mapping:DynRedisMapping",
        "dynamic work queue on a Redis server",
        "redis",
        ("multiprocess", "redis"),
    ),
    MappingInfo(
        "dyn_auto_redis",
        "dispel4py.mappings.redis.mapping:DynAutoRedisMapping",
        "dynamic Redis work queue with autoscaling",
        "redis",
        ("multiprocess", "redis"),
    ),
    MappingInfo(
        "hybrid_redis",
        "dispel4py.mappings.redis.mapping:HybridRedisMapping",
        "Redis: stateful PEs pinned, stateless dynamic (as dyn_redis)",
        "redis",
        ("multiprocess", "redis"),
    ),
    MappingInfo(
        "redis",
        "dispel4py.mappings.redis.mapping:RedisMapping",
        "alias of hybrid_redis in the original (as dyn_redis)",
        "redis",
        ("multiprocess", "redis"),
    ),
    MappingInfo(
        "timed_simple", "dispel4py.mappings.timed:TimedSimpleMapping", "simple with per-PE timing files"
    ),
    MappingInfo(
        "timed_multi",
        "dispel4py.mappings.timed:TimedMultiMapping",
        "multi with per-PE timing files",
        None,
        ("multiprocess",),
    ),
    MappingInfo(
        "timed_mpi",
        "dispel4py.mappings.timed:TimedMPIMapping",
        "mpi with per-PE timing files",
        "mpi",
        ("mpi4py",),
    ),
]
BUILTIN = {m.name: m for m in _BUILTIN}

# the original's module paths, accepted as mapping names
ALIASES = {
    "dispel4py.new.simple_process": "simple",
    "dispel4py.new.multi_process": "multi",
    "dispel4py.new.mpi_process": "mpi",
    "dispel4py.new.zmq_multi": "zmq_multi",
    "dispel4py.new.new_dynamic": "dyn_multi",
    "dispel4py.new.new_dynamic_auto": "dyn_auto_multi",
    "dispel4py.new.new_dynamic_redis": "dyn_redis",
    "dispel4py.new.new_dynamic_redis_auto": "dyn_auto_redis",
    "dispel4py.new.new_hybrid_redis": "hybrid_redis",
    "dispel4py.new.dynamic_redis": "redis",
    "dispel4py.new.timed_simple_process": "timed_simple",
    "dispel4py.new.timed_multi_process": "timed_multi",
    "dispel4py.new.timed_mpi_process": "timed_mpi",
}


def plugins() -> dict[str, Any]:
    """The mapping plug-ins installed (entry points of ``dispel4py.mappings``); reading the
    installed packages' metadata costs ~15 ms, so only when a name is not a built-in."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="dispel4py.mappings") if ep.name not in BUILTIN}


def resolve_name(name: str) -> str:
    return ALIASES.get(name, name)


def _missing_modules(info: MappingInfo) -> list[str]:
    return [m for m in info.modules if importlib.util.find_spec(m) is None]


def mapping_status(name: str) -> str:
    info = BUILTIN.get(name)
    if info is None:
        return "available (plug-in)"
    if info.target is None:
        return "not yet available"
    missing = _missing_modules(info)
    if missing:
        return f"needs pip install 'dispel4py[{info.extra or 'all'}]'"
    return "available"


def available_mappings() -> list[tuple[str, str, str]]:
    """``(name, status, summary)`` for every built-in and plug-in mapping."""
    rows = [(m.name, mapping_status(m.name), m.summary) for m in _BUILTIN]
    rows += [(name, "available (plug-in)", ep.value) for name, ep in sorted(plugins().items())]
    return rows


def get_mapping(name: str) -> type[Mapping]:
    """The mapping class for ``name``, or a clear :class:`MappingUnavailable`."""
    name = resolve_name(name)
    info = BUILTIN.get(name)
    if info is None:
        plugin = plugins().get(name)
        if plugin is not None:
            return plugin.load()
        names = list(BUILTIN) + list(plugins())
        raise MappingUnavailable(
            f"unknown mapping '{name}'{did_you_mean(name, names)}; mappings are: "
            f"{', '.join(names)} (see dispel4py --list-mappings)"
        )
    if info.target is None:
        raise MappingUnavailable(
            f"mapping '{name}' is not yet available in this version of dispel4py; "
            "available now: " + ", ".join(m.name for m in _BUILTIN if mapping_status(m.name) == "available")
        )
    missing = _missing_modules(info)
    if missing:
        raise MappingUnavailable(
            f"mapping '{name}' needs {', '.join(missing)}: pip install 'dispel4py[{info.extra or 'all'}]'"
        )
    module_name, _, class_name = info.target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise MappingUnavailable(
            f"mapping '{name}' cannot be loaded ({exc}); "
            f"reinstall with pip install 'dispel4py[{info.extra or 'all'}]'"
        ) from exc
