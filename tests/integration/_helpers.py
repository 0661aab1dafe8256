"""Shared helpers for the integration tests (real processes, real mpiexec)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def kill_run(procs: list[psutil.Process], trackers_within: float = 10.0) -> list[str]:
    """SIGKILL the processes of a run, but let its resource trackers end on their own.

    A spawn or forkserver run's named semaphores (``/dev/shm/sem.mp-*``) are unlinked by
    multiprocessing's resource tracker once every process holding its pipe has ended; a
    tracker killed with the run leaves them behind for ever. So everything else is killed
    first, and a tracker only if it is still there ``trackers_within`` seconds later.
    Returns what the run had mapped under /dev/shm and is still there (by inode: a named
    semaphore is mapped under a temporary name), which must be nothing.
    """
    mapped = shm_inodes(procs)
    trackers = [p for p in procs if "resource_tracker" in " ".join(_cmdline_of(p))]
    for proc in procs:
        if proc not in trackers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    # wait_gone, not psutil.wait_procs: a zombie counts as gone (wait_procs waits for it)
    for pid in wait_gone([p.pid for p in trackers], within=trackers_within):
        with contextlib.suppress(psutil.Error):
            next(p for p in trackers if p.pid == pid).kill()
    wait_gone([p.pid for p in procs], within=trackers_within)
    return shm_files_of(mapped)


def shm_files_of(inodes: set[int]) -> list[str]:
    """The entries of /dev/shm with one of these inodes (see ``shm_inodes``)."""
    with os.scandir("/dev/shm") as entries:
        return sorted(e.path for e in entries if e.inode() in inodes)


def _cmdline_of(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def shm_inodes(procs: list[psutil.Process]) -> set[int]:
    """Inodes of the files under /dev/shm that ``procs`` map (their pids, while they live)."""
    inodes = set()
    for proc in procs:
        try:
            with open(f"/proc/{proc.pid}/maps") as maps:
                lines = [line.split() for line in maps if " /dev/shm/" in line]
        except OSError:
            continue
        inodes.update(int(fields[4]) for fields in lines if len(fields) >= 6)
    return inodes


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# Runs the command as the child of a process that adopts whatever the command leaves
# behind (PR_SET_CHILD_SUBREAPER), waits for those to end, then names and kills the rest.
_REAPER = r"""
import ctypes, json, os, subprocess, sys, time
import psutil
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
report, within, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
code = subprocess.call(cmd)
deadline = time.monotonic() + within
left = []
while True:  # the command's leftovers are our children now: reap them as they end
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid:
        continue
    if time.monotonic() >= deadline:
        for child in psutil.Process().children(recursive=True):
            try:
                left.append(f"{child.pid} {' '.join(child.cmdline())}")
                child.kill()
            except psutil.Error:
                pass
        break
    time.sleep(0.02)
with open(report, "w") as f:
    json.dump(left, f)
sys.exit(code)
"""


def run_reaped(
    cmd: list[str], within: float = 1.0, timeout: float = 60, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``run(cmd)``, and the processes the command left running ``within`` seconds after it
    ended (``"pid cmdline"``; they are killed).

    Only this run's own descendants are looked at, never other processes of the machine:
    orphans are adopted by a subreaper process between the test and the command, which
    reaps them as they end. Nothing is missed, however short-lived the command.
    """
    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, "left.json")
        reaper = [sys.executable, "-c", _REAPER, report, str(within), *cmd]
        done = run(reaper, timeout=timeout, env=env)
        done.args = cmd
        try:
            with open(report) as f:
                left = json.load(f)
        except FileNotFoundError:
            raise AssertionError(f"the reaper did not report:\n{done.stderr}") from None
    return done, left


def run(
    cmd: list[str], timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``subprocess.run``; if ``cmd`` outlives ``timeout``, every process of it first prints its
    Python stacks (``SIGUSR1``, see ``dispel4py.cli``), and the test fails showing them."""
    full_env = {**os.environ, **(env or {})}
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            out, err = _stacks_then_kill(process)
            raise AssertionError(
                f"{cmd} still ran after {timeout} s; its stacks:\n{err[-20000:]}\nstdout:\n{out[-2000:]}"
            ) from None
    return subprocess.CompletedProcess(cmd, process.returncode, out, err)


def _stacks_then_kill(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Ask every descendant of ``process`` for its stacks, then kill them all."""
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.Error):
            line = " ".join(member.cmdline())
            if "dispel4py" in line and "_mpi_guard" not in line:  # those that print their stacks
                member.send_signal(signal.SIGUSR1)
    time.sleep(2)
    leaked = kill_run(family)
    try:
        out, err = process.communicate(timeout=10)
        return out, err + (f"\nleft in /dev/shm: {leaked}" if leaked else "")
    except subprocess.TimeoutExpired:  # a grandchild we could not see holds the pipes
        return "", "(no output: a process outside the run's tree holds its pipes)"


class WatchedRun:
    """A command started in the background the way failure tests need it.

    Its output goes to files (reading it never waits on a process that inherited a pipe),
    TMPDIR is a private empty folder, and while it runs every descendant is remembered
    (``psutil.Process``: never a recycled pid), with every file the run holds open or mapped
    under /dev/shm, under TMPDIR or directly in the temporary folder (hydra's files), so
    that what outlives the run can be checked without looking at other tests' processes.
    """

    def __init__(self, folder: Path, command: list[str], env: dict[str, str] | None = None) -> None:
        self.tmpdir = folder / "tmp"
        self.tmpdir.mkdir(parents=True)
        self.out_path, self.err_path = folder / "stdout.txt", folder / "stderr.txt"
        self.procs: dict[int, psutil.Process] = {}
        self.held: set[str] = set()
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=err, env={**os.environ, "TMPDIR": str(self.tmpdir), **(env or {})}
            )

    def poll(self) -> set[int]:
        """The run's live descendants now, remembered with the files they hold."""
        try:
            found = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        for child in found:
            self.procs.setdefault(child.pid, child)
        for pid in (self.process.pid, *(child.pid for child in found)):
            self.held.update(self._files_of(pid))
        return {child.pid for child in found}

    def _files_of(self, pid: int) -> set[str]:
        watched = ("/dev/shm/", f"{self.tmpdir}/")
        paths = set()
        try:
            with open(f"/proc/{pid}/maps") as maps:
                paths.update(line.split(maxsplit=5)[-1].strip() for line in maps if "/dev/shm/" in line)
            for entry in os.scandir(f"/proc/{pid}/fd"):
                try:
                    paths.add(os.readlink(entry.path))
                except OSError:
                    pass
        except OSError:  # gone meanwhile, or not ours to read
            pass
        return {
            path.removesuffix(" (deleted)")
            for path in paths
            if path.startswith(watched)
            # hydra_hwloc_xmlfile_*; not a folder such as a checkout in /tmp, which an import scans
            or (os.path.dirname(path) == "/tmp" and not os.path.isdir(path))
        }

    def wait_until(self, condition: Callable[[], Any], what: str, within: float = 20.0) -> Any:
        """Poll until ``condition()`` is true (and return it); fail if the run ends first."""
        deadline = time.monotonic() + within
        while not (found := condition()):
            self.poll()
            assert self.process.poll() is None, f"the run ended before {what}:\n{self.stderr()}"
            assert time.monotonic() < deadline, f"no {what} after {within} s:\n{self.stderr()}"
            time.sleep(0.02)
        return found

    def watch_until_exit(self, within: float = 30.0) -> float:
        """Keep collecting descendants until the run exits; the wall time it exited."""
        deadline = time.monotonic() + within
        while self.process.poll() is None:
            assert time.monotonic() < deadline, f"the run did not end within {within} s:\n{self.stderr()}"
            self.poll()
            time.sleep(0.01)
        return time.time()

    def adopt(self, pids: list[int], born_before: float) -> None:
        """Processes of the run known otherwise (e.g. written to a file by the workflow), in
        case they ended between two polls; a pid reused after ``born_before`` is not ours."""
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                if proc.create_time() <= born_before:
                    self.procs.setdefault(pid, proc)
            except psutil.NoSuchProcess:
                pass

    def leftover_processes(self, within: float) -> list[int]:
        """The descendants still alive ``within`` seconds from now."""
        return wait_gone(sorted(self.procs), within=within)

    def leftover_files(self) -> list[str]:
        """Files held by the run that still exist, and whatever is in its TMPDIR."""
        held = [path for path in sorted(self.held) if os.path.exists(path)]
        return held + sorted(str(path) for path in self.tmpdir.iterdir())

    def stdout(self) -> str:
        return self.out_path.read_text()

    def stderr(self) -> str:
        return self.err_path.read_text()

    def kill_leftovers(self) -> None:
        """After the test, whatever it asserted: no process of the run outlives it, and
        nothing it mapped under /dev/shm stays (see ``kill_run``)."""
        with contextlib.suppress(psutil.Error):
            self.procs.setdefault(self.process.pid, psutil.Process(self.process.pid))
        leaked = kill_run([*self.procs.values()])
        self.process.wait()
        assert leaked == [], f"the run left {leaked} in /dev/shm"


def peak_tree_rss_mb(
    cmd: list[str], env: dict[str, str], timeout: float = 100
) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``cmd``; the peak of the summed RSS of it and its descendants, sampled every 20 ms."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env}
    )
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    total += p.memory_info().rss
            except psutil.Error:
                pass
            peak = max(peak, total / 2**20)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=timeout)
    stop.set()
    sampler.join()
    return peak, subprocess.CompletedProcess(cmd, proc.returncode, out, err)
