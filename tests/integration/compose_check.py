"""A structural check of a Compose file, for ``deploy/docker-compose.yml`` (there is no Docker
engine here to run ``docker compose config``).

* :data:`SCHEMA`: a JSON Schema (draft 7) written for this repository from the Compose
  Specification's documented structure: the top-level elements, every attribute a service
  may have (anything else is refused, as ``docker compose`` refuses it), and the exact shape
  of the attributes our file uses (``build``, ``command``, ``depends_on`` with its
  ``condition`` values, ``healthcheck``, ``environment``, ``volumes``, durations, ``restart``
  policies, ``profiles``). It is a subset: attributes we do not use are only named.
* :func:`interpolate`: the specification's variable interpolation (``${VAR}``,
  ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``$$``; a
  ``$`` in any other place is an error, as in Compose; nesting is not supported), so
  the command lines can be checked as a container would receive them.
* :func:`semantic_problems`: what a schema cannot say: ``depends_on`` names a service, and a
  service that is scaled has no ``container_name`` and publishes no fixed host port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_NAME = "^[a-zA-Z0-9._-]+$"
_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(us|ms|s|m|h))+$"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_LIST_OR_DICT = {
    "oneOf": [
        {
            "type": "object",
            "patternProperties": {".+": {"type": ["string", "number", "boolean", "null"]}},
            "additionalProperties": False,
        },
        {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    ]
}
_COMMAND = {"oneOf": [{"type": "null"}, {"type": "string"}, _STRINGS]}
_BUILD = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {
                "context": {"type": "string"},
                "dockerfile": {"type": "string"},
                "args": _LIST_OR_DICT,
                "target": {"type": "string"},
                "platforms": _STRINGS,
            },
            "additionalProperties": False,
        },
    ]
}
_DEPENDS_ON = {
    "oneOf": [
        {"type": "array", "items": {"type": "string", "pattern": _NAME}, "uniqueItems": True},
        {
            "type": "object",
            "patternProperties": {
                _NAME: {
                    "type": "object",
                    "properties": {
                        "condition": {
                            "enum": ["service_started", "service_healthy", "service_completed_successfully"]
                        },
                        "restart": {"type": ["boolean", "string"]},
                        "required": {"type": "boolean"},
                    },
                    "required": ["condition"],
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
    ]
}
_HEALTHCHECK = {
    "type": "object",
    "properties": {
        "disable": {"type": "boolean"},
        "interval": _DURATION,
        "retries": {"type": "integer", "minimum": 0},
        "start_period": _DURATION,
        "start_interval": _DURATION,
        "timeout": _DURATION,
        "test": {"oneOf": [{"type": "string"}, {**_STRINGS, "minItems": 1}]},
    },
    "additionalProperties": False,
}
_VOLUMES = {
    "type": "array",
    "items": {"oneOf": [{"type": "string"}, {"type": "object", "required": ["type"]}]},
    "uniqueItems": True,
}
# every attribute of a service in the Compose Specification
_SERVICE_ATTRIBUTES = """
annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs
container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime
cpu_shares cpus cpuset credential_spec depends_on deploy develop device_cgroup_rules devices
dns dns_opt dns_search domainname entrypoint env_file environment expose extends
external_links extra_hosts gpus group_add healthcheck hostname image init ipc isolation
label_file labels links logging mac_address mem_limit mem_reservation mem_swappiness
memswap_limit models network_mode networks oom_kill_disable oom_score_adj pid pids_limit
platform ports post_start pre_stop privileged profiles provider pull_policy read_only restart
runtime scale secrets security_opt shm_size stdin_open stop_grace_period stop_signal
storage_opt sysctls tmpfs tty ulimits use_api_socket user userns_mode uts volumes
volumes_from working_dir
""".split()  # noqa: SIM905 - a list of 90 names reads better as words
_SERVICE = {
    "type": "object",
    "properties": {
        **{name: {} for name in _SERVICE_ATTRIBUTES},
        "build": _BUILD,
        "command": _COMMAND,
        "entrypoint": _COMMAND,
        "container_name": {"type": "string"},
        "depends_on": _DEPENDS_ON,
        "environment": _LIST_OR_DICT,
        "healthcheck": _HEALTHCHECK,
        "image": {"type": "string"},
        "init": {"type": "boolean"},
        "profiles": {"type": "array", "items": {"type": "string", "pattern": _NAME}, "uniqueItems": True},
        "restart": {"type": "string", "pattern": "^(no|always|unless-stopped|on-failure(:[0-9]+)?)$"},
        "stop_grace_period": _DURATION,
        "stop_signal": {"type": "string", "pattern": "^SIG[A-Z0-9]+$"},
        "volumes": _VOLUMES,
    },
    "patternProperties": {"^x-": {}},
    "additionalProperties": False,
    "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
}
SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "include": {"type": "array"},
        "services": {
            "type": "object",
            "patternProperties": {_NAME: _SERVICE},
            "additionalProperties": False,
            "minProperties": 1,
        },
        "networks": {"type": "object"},
        "volumes": {"type": "object"},
        "secrets": {"type": "object"},
        "configs": {"type": "object"},
        "models": {"type": "object"},
    },
    "patternProperties": {"^x-": {}},
    "additionalProperties": False,
    "required": ["services"],
}

_VARIABLE = re.compile(
    r"\$(?:(\$)"  # $$: a dollar sign
    r"|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}"  # ${VAR}, ${VAR:-x}, ${VAR?err}, ...
    r"|([A-Za-z_][A-Za-z0-9_]*)"  # $VAR
    r"|)"  # any other $: Compose refuses it (no nesting either)
)


class MissingVariable(ValueError):
    """``${VAR:?error}`` with VAR unset (or empty): what ``docker compose`` stops with."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` (any YAML node) with every string's variables replaced as Compose does."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _one(m, env), value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def _one(match: re.Match[str], env: Mapping[str, str]) -> str:
    escaped, name, op, arg, bare = match.groups()
    if escaped:
        return "$"
    if not name and not bare:
        raise ValueError(f"invalid interpolation at {match.string[match.start() :][:20]!r}: write $$ for a $")
    name = name or bare
    value = env.get(name)
    unset = value is None or (op is not None and op.startswith(":") and value == "")
    if op in (":-", "-") and unset:
        return interpolate(arg, env)
    if op in (":?", "?") and unset:
        raise MissingVariable(f"{name}: {arg}")
    return value or ""


def semantic_problems(compose: dict[str, Any], scaled: set[str]) -> list[str]:
    """What the schema cannot check; an empty list when there is nothing to say."""
    services = compose.get("services", {})
    problems = []
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for other in depends if isinstance(depends, list) else list(depends):
            if other not in services:
                problems.append(f"{name}: depends_on names no service: {other}")
        if name in scaled and "container_name" in service:
            problems.append(f"{name}: a scaled service cannot have a container_name")
        for port in service.get("ports", []) if name in scaled else []:
            if isinstance(port, str) and re.match(r"^([0-9.]+:)?[0-9]+:", port):
                problems.append(f"{name}: a scaled service cannot publish the fixed host port {port}")
    return problems
