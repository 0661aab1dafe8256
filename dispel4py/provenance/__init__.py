"""Provenance: the lineage of every result, in the original's record format (S-ProvFlow),
exported as W3C PROV (``docs/provenance.md``).

The package keeps the original's module ``dispel4py.provenance`` importable as it was
(``from dispel4py.provenance import *`` gives the same names, ``compat.py``) and implements
the engine's recording hook (``dispel4py.recording``) in ``recorder.py``; the engine never
imports it.

Importing the package costs nothing: its names are loaded when first used (module
``__getattr__``), so the API and the CLI import it at the top and ask :func:`asked` whether a
run records provenance; a run that does not never loads the rest (the recorder, the
original's names, the service mode's HTTP client).
"""

from __future__ import annotations

import importlib
from typing import Any

# the package's own names and their modules; every other public name is the original's
# (compat.__all__, which is also what `import *` gives)
_OWN = {
    "ProvenanceConfig": "config",
    "config_from_sources": "config",
    "LineageRecording": "recorder",
    "recording_for": "setup",
}


def asked(spec: Any, graph: Any) -> bool:
    """Whether a run of ``graph`` records provenance: the one place this is decided.

    ``spec`` is what the caller was given: ``False`` (off, whatever the workflow says),
    ``None`` (nothing: on only if the workflow called ``configure_prov_run``), anything
    else (``True``, a config, a path, the CLI's ``--provenance-*`` flags): on."""
    if spec is False:
        return False
    return spec is not None or getattr(graph, "provenance_config", None) is not None


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (then kept in the module)."""
    if name in _OWN:
        value = getattr(importlib.import_module(f"{__name__}.{_OWN[name]}"), name)
    elif name.startswith("__") and name != "__all__":
        raise AttributeError(name)
    else:
        compat = importlib.import_module(f"{__name__}.compat")
        if name != "__all__" and name not in compat.__all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(compat, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_OWN, *__getattr__("__all__")})
