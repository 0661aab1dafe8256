"""What a plain run imports: a command that uses no provenance and no other mapping's options
does not import the provenance package's modules (only its light ``__init__``), the HTTP
client, the installed packages' metadata (for plug-ins) or the other mappings (to learn
their options). Each costs every command time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

_PROBE = """
import json, sys
from dispel4py.cli.command import main
code = main(sys.argv[1:])
heavy = ["dispel4py.provenance.recorder", "dispel4py.provenance.compat", "dispel4py.provenance.setup",
         "urllib.request", "importlib.metadata", "dispel4py.mappings.redis.mapping",
         "dispel4py.mappings.mpi.mapping", "dispel4py.mappings.processes.zmq_multi"]
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}), file=sys.stderr)
"""

WORKFLOW = "dispel4py.examples.graph_testing.pipeline_test"


def _loaded(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=50)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return report["loaded"]


def test_a_plain_run_imports_nothing_it_does_not_use() -> None:
    assert _loaded("simple", WORKFLOW, "-i", "2", "--stats") == []


def test_another_mappings_option_still_loads_the_others_and_is_ignored() -> None:
    loaded = _loaded("simple", WORKFLOW, "-i", "2", "--redis-url", "redis://localhost:1/0")
    assert "dispel4py.mappings.redis.mapping" in loaded  # to know --redis-url takes a value


def test_a_provenance_run_loads_provenance(tmp_path) -> None:
    loaded = _loaded(
        "simple", WORKFLOW, "-i", "2", "--provenance-config", "inline", "--provenance-path", str(tmp_path)
    )
    assert "dispel4py.provenance.recorder" in loaded


def test_the_provenance_package_alone_is_light() -> None:
    """Importing ``dispel4py.provenance`` loads none of its modules until a name is used."""
    probe = (
        "import sys, dispel4py.provenance as p\n"
        "before = sorted(m for m in sys.modules if m.startswith('dispel4py.provenance.'))\n"
        "from dispel4py.provenance import ProvenanceType, configure_prov_run, ProvenanceConfig\n"
        "print(before, 'dispel4py.provenance.compat' in sys.modules, ProvenanceType.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=50)
    assert done.stdout.split() == ["[]", "True", "ProvenanceType"], done.stderr
