"""From what the user asked (``dispel4py.run(..., provenance=...)``, the CLI's flags, the
workflow's ``configure_prov_run``) to the run's recorder, or ``None`` when provenance is off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispel4py.errors import UsageError

from . import asked
from .config import FLAGS, ProvenanceConfig, check, config_from_sources
from .recorder import LineageRecording

__all__ = ["recording_for", "INLINE_DEFAULT_PATH"]

INLINE_DEFAULT_PATH = "./"  # the original's ProvenanceType.PROV_PATH
_FIELDS = set(FLAGS.values()) | {"timeout_s", "writer_process"}


def recording_for(spec: Any, graph: Any, mapping: str) -> LineageRecording | None:
    """The recorder of a run of ``graph`` on ``mapping``.

    ``spec``: ``None`` (on if the workflow called ``configure_prov_run``), ``False`` (off),
    ``True`` (on, the workflow's config if any, files in ``./``), a JSON file's path, a dict
    of the original's keys (``"s-prov:save-mode"``, ...) and/or ``path``, ``bulk_size``,
    ``run_id``, ``user``, ``url``, ``token``, or a :class:`ProvenanceConfig`."""
    if not asked(spec, graph):
        return None
    inline = getattr(graph, "provenance_config", None)
    if isinstance(spec, ProvenanceConfig):
        config = check(spec)
    elif isinstance(spec, str):
        config = config_from_sources(inline, spec)
    elif isinstance(spec, Mapping):
        flags = {k: v for k, v in spec.items() if k in _FIELDS}
        keys = {k: v for k, v in spec.items() if k not in _FIELDS}
        config = config_from_sources(
            {**(inline or {}), **keys}, None, flags, default_path=INLINE_DEFAULT_PATH
        )
    elif spec is True or spec is None:
        config = config_from_sources(inline, None, None, default_path=INLINE_DEFAULT_PATH)
    else:
        raise UsageError(
            f"provenance= takes True, False, a config file's path, a dict or a ProvenanceConfig "
            f"(got {type(spec).__name__})"
        )
    return LineageRecording(config, mapping)
