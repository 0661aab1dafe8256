"""Shared helpers for the integration tests (real processes, real mpiexec)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

WORKFLOWS = Path(__file__).parent / "workflows"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dispel4py", *args]


def tool(name: str, install: str) -> str:
    """A command installed next to this Python (a wheel's), else on PATH.

    Missing: a failure in CI (CI=true), where every backend must be there; a skip elsewhere.
    """
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        if IN_CI:
            pytest.fail(f"{name} not found: {install}")
        pytest.skip(f"{name} not found ({install})")
    return found


def mpiexec() -> str:
    """The mpiexec of the mpich wheel."""
    return tool("mpiexec", "pip install 'dispel4py[mpi]' (the mpich wheel)")


def descendants_alive(pid: int) -> list[int]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def wait_gone(pids: list[int], within: float = 3.0) -> list[int]:
    """The pids still alive after ``within`` seconds."""
    deadline = time.monotonic() + within
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def engine_processes() -> set[int]:
    """Processes of dispel4py runs (drivers, forked or spawned workers) on this machine."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "dispel4py" in cmdline or "multiprocess" in cmdline:
            found.add(proc.pid)
    return found - {os.getpid()}


def run(
    cmd: list[str], timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
