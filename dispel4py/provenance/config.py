"""What a provenance run is asked to do (:class:`ProvenanceConfig`), from the original's
sources: a JSON file (``--provenance-config FILE``), the workflow's own
``configure_prov_run(graph, ..., sprovConfig={...})`` (``--provenance-config inline``, or
no flag at all), the ``--provenance-*`` flags, or ``dispel4py.run(..., provenance=...)``.

Everything is checked here, in the driver, before anything runs: a bad file, an unknown
key value, a ``service`` mode without a URL or a folder that cannot be written is a
:class:`~dispel4py.errors.UsageError` naming the key, flag or file (exit 2).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dispel4py.errors import UsageError

__all__ = ["ProvenanceConfig", "config_from_sources", "FLAGS", "DEFAULT_BULK_SIZE"]

DEFAULT_BULK_SIZE = 1000  # records per bulk file or POST (the original: 1, a file per record)
SAVE_MODES = ("file", "service")
# --provenance-* flag -> ProvenanceConfig field (and the key accepted by dispel4py.run)
FLAGS = {
    "--provenance-path": "path",
    "--provenance-bulk-size": "bulk_size",
    "--provenance-runid": "run_id",
    "--provenance-userid": "user",
    "--provenance-repository-url": "url",
    "--provenance-bearer-token": "token",
}
_KEYS = {  # the original's config keys -> fields
    "s-prov:save-mode": "save_mode",
    "s-prov:run-id": "run_id",
    "s-prov:workflowName": "workflow_name",
    "s-prov:workflowId": "workflow_id",
    "s-prov:workflowType": "workflow_type",
    "s-prov:description": "description",
    "s-prov:session-id": "session_id",
    "s-prov:system-id": "system_id",
    "provone:User": "user",
    "s-prov:sel-rules": "sel_rules",
    "s-prov:componentsType": "components",
}
_IGNORED_KEYS = ("s-prov:transfer-rules", "s-prov:WFExecutionInputs", "s-prov:creator", "s-prov:mapping")


@dataclass(frozen=True)
class ProvenanceConfig:
    """A checked provenance configuration (picklable: it travels to every worker)."""

    save_mode: str = "file"
    path: str | None = None
    url: str | None = None
    token: str | None = None
    bulk_size: int = DEFAULT_BULK_SIZE
    run_id: str | None = None
    user: str = "anonymous"
    workflow_name: str = ""
    workflow_id: str = ""
    workflow_type: str = "dispel4py"
    description: str = ""
    session_id: str = ""
    system_id: str = ""
    sel_rules: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 10.0  # per POST to the repository
    # file mode: JSON and files made by a writer process per worker (pipestore.py); False:
    # by a thread of the worker (the benchmarks compare the two)
    writer_process: bool = True

    def with_run_id(self) -> ProvenanceConfig:
        """This config with a run id (the original's ``<host>-<pid>-<uuid1>`` if none given)."""
        if self.run_id:
            return self
        return replace(self, run_id=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid1()}")


def _load_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise UsageError(f"--provenance-config {path}: cannot read the file ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"--provenance-config {path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise UsageError(f"--provenance-config {path}: expected a JSON object, got {type(data).__name__}")
    return data


def _apply_keys(values: dict[str, Any], sprov: Mapping[str, Any], where: str) -> None:
    for key, value in sprov.items():
        name = _KEYS.get(key)
        if name is not None:
            values[name] = value
        elif key in FLAGS.values() or key in ("timeout_s", "writer_process"):
            values[key] = value
        elif key not in _IGNORED_KEYS:
            raise UsageError(
                f"{where}: unknown key '{key}'; known keys: {', '.join(sorted([*_KEYS, *_IGNORED_KEYS]))}"
            )


def config_from_sources(
    inline: Mapping[str, Any] | None = None,
    file: str | None = None,
    flags: Mapping[str, Any] | None = None,
    *,
    default_path: str | None = None,
) -> ProvenanceConfig:
    """The config of a run: ``inline`` (the workflow's ``configure_prov_run``), overridden by
    ``file`` (``--provenance-config FILE``), overridden by ``flags`` (``{field: value}``
    from ``--provenance-*``). Checked, with a run id; raises :class:`UsageError`."""
    values: dict[str, Any] = {}
    if inline:
        _apply_keys(values, inline, "configure_prov_run(sprovConfig=...)")
    if file is not None and file != "inline":
        _apply_keys(values, _load_file(file), f"--provenance-config {file}")
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = value
    if values.get("path") is None and default_path is not None and values.get("save_mode", "file") == "file":
        values["path"] = default_path
    return check(ProvenanceConfig(**_typed(values)))


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    if "bulk_size" in values:
        size = values["bulk_size"]
        try:
            values["bulk_size"] = int(size)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--provenance-bulk-size must be a whole number (got {size!r})") from exc
    for name in ("sel_rules", "components"):
        if not isinstance(values.get(name, {}), dict):
            key = next(k for k, v in _KEYS.items() if v == name)
            raise UsageError(f"provenance config key '{key}' must be an object (got {values[name]!r})")
    if "components" in values:
        values["components"] = {pe: _component(pe, spec) for pe, spec in values["components"].items()}
    return values


def _component(pe: str, spec: Any) -> dict[str, Any]:
    """One ``s-prov:componentsType`` entry, its types as ``(module, qualname)`` pairs (so the
    config pickles on every start method; the workers import them back, ``rules.py``)."""
    where = f"provenance config key 's-prov:componentsType' entry '{pe}'"
    if not isinstance(spec, dict):
        raise UsageError(f"{where} must be an object (got {spec!r})")
    types = spec.get("s-prov:type", ())
    if isinstance(types, (str, type)):
        types = (types,)
    names = []
    for kind in types:
        if isinstance(kind, type):
            names.append((kind.__module__, kind.__qualname__))
        elif isinstance(kind, str) and kind:
            module, _, name = kind.rpartition(".")
            names.append((module or "dispel4py.provenance", name))
        else:
            raise UsageError(f"{where}: 's-prov:type' lists {kind!r}, not a provenance type or its name")
    return {
        "types": tuple(names),
        "cluster": spec.get("s-prov:prov-cluster"),
        "stateful_port": spec.get("s-prov:stateful-port"),
        "wlength": spec.get("wlength"),
    }


def check(config: ProvenanceConfig) -> ProvenanceConfig:
    """``config`` checked (save mode, URL, bulk size, folder), with a run id."""
    if config.save_mode not in SAVE_MODES:
        raise UsageError(
            f"provenance config key 's-prov:save-mode': unknown save mode {config.save_mode!r}; "
            f"use one of: {', '.join(SAVE_MODES)}"
        )
    if config.bulk_size < 1:
        raise UsageError(f"--provenance-bulk-size must be at least 1 (got {config.bulk_size})")
    if config.save_mode == "service" and not config.url:
        raise UsageError(
            "provenance save mode 'service' needs the repository's URL: --provenance-repository-url URL"
        )
    if config.save_mode == "file":
        if not config.path:
            raise UsageError("provenance save mode 'file' needs a folder: --provenance-path DIR")
        check_folder(config.path)
    return config.with_run_id()


def check_folder(path: str) -> None:
    """Make ``path`` and check that a file can be written in it (:class:`UsageError` if not)."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".d4py-check-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"--provenance-path {path}: cannot write provenance files there ({exc.strerror or exc})"
        ) from exc
