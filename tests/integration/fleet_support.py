"""Simulated hosts for the fleet tests: each agent (``dispel4py worker -n N --serve``) is its
own process tree in its own session, with its own working directory and ``HOME``; its
output goes to files. ``tree_cpu_s`` reads the CPU time of an agent's tree from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
from _helpers import cli

from dispel4py.dynamic.signing import Signer
from dispel4py.mappings.redis.agents import AgentRecord, read_agents


class Host:
    def __init__(self, folder: Path, url: str, key: Path, args: list[str], env: dict[str, str]) -> None:
        self.folder = folder
        folder.mkdir(parents=True)
        self.err_path = folder / "stderr.txt"
        with open(folder / "stdout.txt", "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                cli("worker", "--redis-url", url, "--key-file", str(key), *args),
                stdout=out,
                stderr=err,
                cwd=folder,
                env={**os.environ, "HOME": str(folder), **env},
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.err_path.read_text()

    def tree(self) -> list[int]:
        try:
            return [self.pid, *(c.pid for c in psutil.Process(self.pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def kill_tree(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, within: float = 20.0) -> int:
        """SIGTERM (drain), then the exit code; the tree is killed if it does not end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=within)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)


def tree_cpu_s(pids: list[int]) -> float:
    """utime + stime of the processes ``pids`` (``/proc/<pid>/stat``), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / os.sysconf("SC_CLK_TCK")


def agents_of(client, key: bytes) -> list[AgentRecord]:
    return read_agents(client, Signer(key))[0]


def wait_for(condition, what: str, within: float = 30.0):
    deadline = time.monotonic() + within
    while not (found := condition()):
        assert time.monotonic() < deadline, f"no {what} after {within} s"
        time.sleep(0.05)
    return found
