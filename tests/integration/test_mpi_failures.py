"""How an ``mpi`` run fails, under a real mpiexec (the mpich wheel's hydra).

Every failure - a PE exception in any phase, ``sys.exit``/``os._exit`` in a PE, SIGKILL of
a rank, SIGINT/SIGTERM to mpiexec - must end every rank, with exactly one
``dispel4py: error:`` line on stderr naming the PE instance or the rank (pid, host, PEs),
a non-zero exit, nothing on stdout but results, and none of this run's
``/dev/shm/mpich_shm_*`` or ``/tmp/hydra_hwloc_xmlfile_*`` left behind.

The workflow (``workflows/mpi_failing.py``) records, on every rank, its pid and the exact
names of its run's MPICH and hydra files, so that files of other runs sharing the machine
never count. One hydra behaviour cannot be changed from the ranks: on the first Ctrl-C,
mpiexec itself prints "Sending Ctrl-C to processes as requested" and "Press Ctrl-C again
to force abort" on stdout, before any rank hears of it.

No check reads a clock: once the failure has happened (``failed-at`` exists), every instance
of Work holds the items it starts until its rank is ended (``D4P_HOLD=1``), so a run that
went on with its work instead of ending would never end; every wait is a hang guard
(``HANG_GUARD_S``) that returns as soon as the run is over.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from _helpers import WORKFLOWS, cli, mpiexec, run, wait_gone

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]

WORKFLOW = str(WORKFLOWS / "mpi_failing.py")
HANG_GUARD_S = 30.0  # for mpiexec to end, and again for every rank and guard to be gone
HYDRA_CTRL_C = ["Sending Ctrl-C to processes as requested", "Press Ctrl-C again to force abort"]
INTERNALS = (
    "UnboundLocalError",
    "dispel4py/mappings/",
    "dispel4py/cli/",
    "<frozen runpy>",
    "Abort(",
)


@dataclass
class MpiRun:
    """One ``mpiexec -n N dispel4py mpi mpi_failing.py`` started in the background."""

    tmp: Path
    ranks: int
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _STARTED.append(self)
        self.run_dir = self.tmp / "run"
        self.run_dir.mkdir(parents=True)
        (self.tmp / "tmp").mkdir()
        env = {
            **os.environ,
            "TMPDIR": str(self.tmp / "tmp"),
            "D4P_RUN_DIR": str(self.run_dir),
            "D4P_HOLD": "1",
            **self.env,
        }
        self.out, self.err = (self.tmp / "stdout").open("w"), (self.tmp / "stderr").open("w")
        command = [mpiexec(), "-n", str(self.ranks), *cli("mpi", WORKFLOW, *self.args)]
        # output goes to files: a helper process that keeps it open must not make us wait
        self.process = subprocess.Popen(command, stdout=self.out, stderr=self.err, env=env)

    def wait_for(self, name: str, within: float = 30.0) -> Path:
        """The run-dir file ``name`` once the run has written it."""
        path, deadline = self.run_dir / name, time.monotonic() + within
        while not path.exists():
            assert self.process.poll() is None, f"the run ended before writing {name}: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {name} after {within} s"
            time.sleep(0.02)
        return path

    def finish(self, within: float = HANG_GUARD_S) -> None:
        """Wait for mpiexec (``within``: a hang guard)."""
        try:
            self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill_everything()
            pytest.fail(f"mpiexec still running {within} s later (a hang):\n{self.stderr()}")
        self.out.close()
        self.err.close()

    def fail_now(self) -> None:
        """The test is about to cause the failure: from now on Work holds its items."""
        (self.run_dir / "failed-at").write_text(str(time.time()))

    def kill_everything(self) -> None:
        """Clean up after a failed check: mpiexec, the ranks, their guards, a helper."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.out.close()
        self.err.close()
        helper = self.run_dir / "helper.pid"
        pids = [
            *self.rank_pids(),
            *self.guard_pids(),
            *([int(helper.read_text())] if helper.exists() else []),
        ]
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if any(
                    mark in " ".join(proc.cmdline())
                    for mark in ("mpi_failing.py", "mpi/guard.py", "sleep(20)")
                ):
                    proc.kill()  # only processes of this run: a pid may have been reused

    def rank_info(self) -> dict[int, dict]:
        return {
            int(path.stem.split("-")[1]): json.loads(path.read_text())
            for path in self.run_dir.glob("rank-*.json")
        }

    def rank_pids(self) -> list[int]:
        return [info["pid"] for info in self.rank_info().values()]

    def guard_pids(self) -> list[int]:
        """Guard processes (``mpi/guard.py RANK_PID ...``) of this run's ranks."""
        ranks = {str(pid) for pid in self.rank_pids()}
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            for i, arg in enumerate(cmdline[:-1]):
                if arg.endswith("mpi/guard.py") and cmdline[i + 1] in ranks:
                    found.append(proc.pid)
        return found

    def run_files(self) -> list[str]:
        return sorted({f for info in self.rank_info().values() for f in info["files"]})

    def stdout(self) -> str:
        return (self.tmp / "stdout").read_text()

    def stderr(self) -> str:
        return (self.tmp / "stderr").read_text()

    def failed(self) -> bool:
        return (self.run_dir / "failed-at").exists()


_STARTED: list[MpiRun] = []


@pytest.fixture(autouse=True)
def _end_every_run() -> Iterator[None]:
    """Whatever a test asserted, no process of its runs outlives it."""
    yield
    while _STARTED:
        _STARTED.pop().kill_everything()


def _failing_run(tmp: Path, ranks: int, mode: str, **env: str) -> MpiRun:
    return MpiRun(tmp, ranks, {"D4P_FAIL": mode, **env})


def _error_line(run: MpiRun) -> str:
    """The one ``dispel4py: error:`` line, and no sign of dispel4py's or MPICH's internals."""
    stderr = run.stderr()
    lines = [line for line in stderr.splitlines() if line.startswith("dispel4py: error:")]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{stderr}"
    for internal in INTERNALS:
        assert internal not in stderr, f"{internal!r} on stderr:\n{stderr}"
    return lines[0]


def _check_ended(run: MpiRun) -> None:
    """mpiexec ended after the failure (Work held its items from then on: it ended because of
    the failure, not by finishing), and every rank and guard is gone."""
    assert run.failed(), "the run ended, but not after a failure"
    assert len(run.rank_info()) == run.ranks  # every rank started and recorded itself
    assert wait_gone(run.rank_pids() + run.guard_pids(), within=HANG_GUARD_S) == []


def _check_nothing_left(run: MpiRun) -> None:
    files = run.run_files()
    assert any("/mpich_shm_" in f for f in files), files  # hydra made both for this run...
    assert any("/hydra_hwloc_xmlfile_" in f for f in files), files
    assert [f for f in files if os.path.exists(f)] == []  # ...and none is left


def _check_failure(run: MpiRun, *fragments: str) -> str:
    assert run.process.returncode == 1, run.stderr()
    line = _error_line(run)
    for fragment in fragments:
        assert fragment in line, line
    assert run.stdout() == ""  # no banner from mpiexec, no results
    _check_ended(run)
    _check_nothing_left(run)
    return line


@pytest.mark.parametrize("ranks", [2, 5])
@pytest.mark.parametrize("phase", ["preprocess", "process", "postprocess"])
def test_pe_exception_is_one_line_and_ends_every_rank(tmp_path: Path, phase: str, ranks: int) -> None:
    items = {"D4P_ITEMS": "6"} if phase == "postprocess" else {}
    run = _failing_run(tmp_path, ranks, f"raise-{phase}", **items)
    run.finish()
    line = _check_failure(run, f"PE Work1 (instance 1) failed in {phase}", "[rank 1 on ")
    assert line.endswith(f"ValueError: boom in {phase} on rank 1")
    assert "mpi_failing.py" in run.stderr()  # the user's traceback follows the line


def test_abort_never_returns_into_dispel4py(tmp_path: Path) -> None:
    """MPI_Abort returns with MPICH; the rank then went on (UnboundLocalError: 'stats')."""
    for attempt in range(4):
        run = _failing_run(tmp_path / str(attempt), 5, "raise-process")
        run.finish()
        _check_failure(run, "PE Work1 (instance 1) failed in process")


def test_several_ranks_failing_at_once_say_one_line(tmp_path: Path) -> None:
    run = _failing_run(tmp_path, 5, "raise-preprocess", D4P_FAIL_RANK="all")
    run.finish()
    _check_failure(run, "failed in preprocess", "ValueError: boom in preprocess")


def test_sys_exit_in_a_pe(tmp_path: Path) -> None:
    run = _failing_run(tmp_path, 3, "sys-exit")
    run.finish()
    _check_failure(run, "PE Work1 (instance 1)", "[rank 1 on ", "sys.exit(4)")


def _rank_died_fragments(run: MpiRun, rank: int) -> tuple[str, ...]:
    pid = run.rank_info()[rank]["pid"]
    return (f"rank {rank} (pid {pid} on {socket.gethostname()}, hosting Work1 (instance 1)",)


@pytest.mark.parametrize("ranks", [2, 5])
def test_os_exit_in_a_pe_names_the_rank(tmp_path: Path, ranks: int) -> None:
    run = _failing_run(tmp_path, ranks, "os-exit")
    run.finish()
    _check_failure(run, *_rank_died_fragments(run, 1), "exited with status 3")


def test_sigkill_of_a_rank_names_it(tmp_path: Path) -> None:
    run = _failing_run(tmp_path, 3, "hang")
    run.wait_for("working-1")
    pid = run.rank_info()[1]["pid"]
    run.fail_now()
    os.kill(pid, signal.SIGKILL)
    run.finish()
    _check_failure(run, *_rank_died_fragments(run, 1), "was killed by signal 9 (SIGKILL)")


@pytest.mark.parametrize("mode", ["fork-os-exit", "daemon-os-exit"])
def test_a_helper_outliving_its_rank_does_not_hang_the_run(tmp_path: Path, mode: str) -> None:
    """The helper keeps the rank's PMI socket (fork) or its stdout/stderr (daemon) open."""
    run = _failing_run(tmp_path, 2, mode)
    run.finish()  # the daemon helper outlives the run: _end_every_run ends it
    _check_failure(run, *_rank_died_fragments(run, 1), "exited with status 3")


@pytest.mark.parametrize(
    ("signum", "code", "words"),
    [(signal.SIGINT, 130, "interrupted (SIGINT)"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
)
def test_signal_to_mpiexec_ends_every_rank(tmp_path: Path, signum: int, code: int, words: str) -> None:
    run = _failing_run(tmp_path, 3, "hang")
    run.wait_for("working-1")
    run.fail_now()
    run.process.send_signal(signum)
    run.finish()
    assert run.process.returncode == code, run.stderr()
    assert words in _error_line(run)
    # on stdout only hydra's own words on the first Ctrl-C (mpiexec prints them, unasked)
    said = [line.split("] ", 1)[-1] for line in run.stdout().splitlines() if line.startswith("[mpiexec@")]
    assert len(said) == len(run.stdout().splitlines()), run.stdout()
    assert said == (HYDRA_CTRL_C if signum == signal.SIGINT else [])
    _check_ended(run)
    _check_nothing_left(run)


def test_a_successful_run_leaves_nothing(tmp_path: Path) -> None:
    run = MpiRun(tmp_path, 3, {"D4P_ITEMS": "4"})
    run.finish()
    assert run.process.returncode == 0, run.stderr()
    assert run.stdout() == "Outputs: {}\n"
    assert "dispel4py: error" not in run.stderr()
    assert wait_gone(run.rank_pids() + run.guard_pids(), within=HANG_GUARD_S) == []
    _check_nothing_left(run)


def test_warnings_are_said_once_not_once_per_rank() -> None:
    done = run(
        [
            mpiexec(),
            "-n",
            "3",
            *cli("mpi", "dispel4py.examples.graph_testing.unconnected_pipeline", "--start-method", "spawn"),
            "-d",
            '{"TestProducer0": 2}',
        ]
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("TestProducer6 is a source PE and got no input") == 1, done.stderr
    assert done.stderr.count("ignoring options of other mappings, not of mpi: --start-method spawn") == 1, (
        done.stderr
    )


# -- MPICH's shared memory when a run dies while a rank is still starting ----------------------
def _mapped_mpich_shm(procs: list[psutil.Process]) -> set[str]:
    found = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            found |= {m.path for m in proc.memory_maps(grouped=True) if "/dev/shm/mpich_shm_" in m.path}
    return found


def _ranks_mapping_mpich_shm(process: subprocess.Popen, seen: dict[int, psutil.Process]):
    """The ranks of ``process`` (mpiexec), once one maps MPICH's shared memory, and those
    segments; every descendant met is remembered in ``seen`` (for the cleanup)."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "mpiexec ended before any rank mapped MPICH's shared memory"
        assert time.monotonic() < deadline, "no rank mapped MPICH's shared memory within 60 s"
        with contextlib.suppress(psutil.Error):
            seen.update((p.pid, p) for p in psutil.Process(process.pid).children(recursive=True))
        ranks = [p for p in seen.values() if "mpi_failing.py" in " ".join(_cmdline(p))]
        shm = _mapped_mpich_shm(ranks)
        if shm:
            return ranks, shm
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["ctrl-c-to-mpiexec", "sigkill-to-a-rank"])
def test_a_run_ended_while_a_rank_is_still_starting_leaves_no_shared_memory(tmp_path: Path, how: str) -> None:
    """Two ranks are in MPI_Init, which made MPICH's /dev/shm/mpich_shm_* segment, and wait
    there for a third that has not started (it waits for a gate file that never comes):
    the ranks have not unlinked the segment yet. Ending the run now must not leave it in
    /dev/shm (the guards unlink it: guard.py). Only this run's segment is looked at (found
    in its ranks' memory maps), never other runs' sharing the machine. About 2-4 s."""
    late = f"while [ ! -e {tmp_path / 'never'} ]; do sleep 0.05; done; exec {' '.join(cli('mpi', WORKFLOW))}"
    command = [mpiexec(), "-n", "2", *cli("mpi", WORKFLOW), ":", "-n", "1", "sh", "-c", late]
    env = {**os.environ, "TMPDIR": str(tmp_path), "D4P_RUN_DIR": str(tmp_path), "D4P_FAIL": "hang"}
    with open(tmp_path / "stderr", "w") as err:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True
        )
    seen: dict[int, psutil.Process] = {}
    try:
        ranks, shm = _ranks_mapping_mpich_shm(process, seen)
        assert all(os.path.exists(path) for path in shm)  # not unlinked yet: a rank is missing
        if how == "ctrl-c-to-mpiexec":
            process.send_signal(signal.SIGINT)
        else:
            next(p for p in ranks if _mapped_mpich_shm([p])).kill()
        process.wait(timeout=30)
        assert process.returncode != 0
        assert wait_gone(list(seen), within=10) == []  # ranks, guards, the late rank's shell
        assert [path for path in shm if os.path.exists(path)] == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for proc in seen.values():  # psutil.Process: never a recycled pid
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []
