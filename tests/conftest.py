"""Shared fixtures: run the CLI in a fresh interpreter, reset the global PE id counter."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from dispel4py.workflow_graph import WorkflowNode

RunCli = Callable[..., subprocess.CompletedProcess]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)
    env.pop("DISPEL4PY_REPLAY_DIR", None)  # run_cli runs in tmp_path: the default ./.dispel4py
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.fixture(autouse=True, scope="session")
def _replay_files_out_of_the_checkout(tmp_path_factory) -> Iterator[None]:
    """Failing runs save their failing call (dispel4py replay); outside run_cli, whose runs
    are in tmp_path, they would do it in the checkout: send them to a temporary folder."""
    saved = os.environ.get("DISPEL4PY_REPLAY_DIR")
    os.environ["DISPEL4PY_REPLAY_DIR"] = str(tmp_path_factory.mktemp("replay"))
    yield
    if saved is None:
        os.environ.pop("DISPEL4PY_REPLAY_DIR", None)
    else:
        os.environ["DISPEL4PY_REPLAY_DIR"] = saved


@pytest.fixture
def example_seed(monkeypatch) -> int:
    """The seed of the examples' random words for this test (``DISPEL4PY_EXAMPLE_SEED``),
    random unless ``D4PY_TEST_SEED`` is set; printed, so pytest shows it with a failure."""
    seed = int(os.environ.get("D4PY_TEST_SEED") or random.randrange(1_000_000))
    print(f"random example words: seed {seed} (rerun with D4PY_TEST_SEED={seed})", flush=True)
    monkeypatch.setenv("DISPEL4PY_EXAMPLE_SEED", str(seed))
    return seed


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
