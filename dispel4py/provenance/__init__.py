"""Provenance: the lineage of every result, in the original's record format (S-ProvFlow),
exported as W3C PROV (``docs/provenance.md``).

The package keeps the original's module ``dispel4py.provenance`` importable as it was
(``from dispel4py.provenance import *`` gives the same names, ``compat.py``) and implements
the engine's recording hook (``dispel4py.recording``) in ``recorder.py``; the engine never
imports it.
"""

from __future__ import annotations

from .compat import *  # noqa: F403 - the original's names, for `from dispel4py.provenance import *`
from .compat import __all__ as __all__
from .config import ProvenanceConfig as ProvenanceConfig
from .config import config_from_sources as config_from_sources
from .recorder import LineageRecording as LineageRecording
from .setup import recording_for as recording_for

# __all__ is the original's (compat.py), so that `import *` gives what it gave; the
# package's own names (ProvenanceConfig, LineageRecording, recording_for) are imported by name.
