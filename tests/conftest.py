"""Shared fixtures: run the CLI in a fresh interpreter, reset the global PE id counter."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from dispel4py.workflow_graph import WorkflowNode

RunCli = Callable[..., subprocess.CompletedProcess]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.fixture
def run_cli(tmp_path) -> RunCli:
    """``run_cli(*args, timeout=30, cwd=tmp_path)`` runs ``python -m dispel4py *args``.

    A fresh interpreter per call, so PE ids (``<name><global counter>``) are those a user sees.
    """

    def run(*args: str, timeout: float = 30, cwd=None, module: str = "dispel4py"):
        return subprocess.run(
            [sys.executable, "-m", module, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or tmp_path,
            env=_env(),
            check=False,
        )

    return run


@pytest.fixture
def fresh_ids() -> Iterator[None]:
    """Number PEs from 0 as in a fresh interpreter; restore the counter afterwards."""
    saved = WorkflowNode.node_counter
    WorkflowNode.node_counter = 0
    yield
    WorkflowNode.node_counter = max(saved, WorkflowNode.node_counter)
