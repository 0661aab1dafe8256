"""multi and zmq_multi: no process outlives its driver, signals stop a run like Ctrl-C, a
dead worker is reported at once, and stopping workers never waits on them.

Each test looks only at the process tree of the driver it started (collected while it
runs), and runs with a private TMPDIR so that leftovers can be seen.

No check reads a clock: once a test has stopped a run (a signal, a death), the workflow
holds every new item until its process is ended (``D4PY_HOLD_FILE``, ``LIFE_HOLD_FILE``), and
a forked helper lives longer than any hang guard (``LIFE_HELPER_S``). So a run that waited
for its work, or for the helper's pipe, would not end at all; the waits below are hang
guards (``HANG_GUARD_S``) that return as soon as the run is over.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from _helpers import WORKFLOWS, cli, kill_run, shm_files_of, shm_inodes, wait_gone

pytestmark = pytest.mark.timeout(60)

MAPPINGS = ["multi", "zmq_multi"]
HANG_GUARD_S = 30.0  # for a run to end and its processes to be gone; never reached when it works
HELPER_LIVES_S = "600"  # a forked helper outlives every hang guard (the cleanup kills it)


class Driver:
    """A ``dispel4py`` run whose output goes to files (so reading it never waits on a
    process that inherited the pipe) and whose descendants are remembered."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.marks, self.hold = tmp_path / "marks", tmp_path / "hold"  # slow.py's (not in TMPDIR)
        self.marks.mkdir()
        # short, not under tmp_path: the forkserver's socket lives in it, and a Unix socket's
        # path has at most 107 bytes (pytest-xdist's tmp_path is deep)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="d4t-"))
        self.out_path, self.err_path = tmp_path / "out.txt", tmp_path / "err.txt"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                cli(*args),
                stdout=out,
                stderr=err,
                env={
                    **os.environ,
                    "TMPDIR": str(self.tmpdir),
                    "D4PY_MARK_DIR": str(self.marks),
                    "D4PY_HOLD_FILE": str(self.hold),
                    **(env or {}),
                },
            )
        self.procs: dict[int, psutil.Process] = {}  # every descendant seen, by pid
        self.shm: set[int] = set()  # inodes of what they mapped under /dev/shm

    @property
    def seen(self) -> set[int]:
        return set(self.procs)

    def descendants(self) -> set[int]:
        """The driver's live descendants now (also remembered, for the cleanup)."""
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        for child in found:
            self.procs.setdefault(child.pid, child)
        return {child.pid for child in found}

    def shm_left(self) -> list[str]:
        """What the run's processes mapped under /dev/shm (semaphores, arenas) and is still there."""
        return shm_files_of(self.shm)

    def wait_for(self, count: int) -> set[int]:
        """Until ``count`` descendants run and slow.py's Slow has done an item (workers mid-items)."""
        deadline = time.monotonic() + HANG_GUARD_S
        while len(self.descendants()) < count or not any(self.marks.iterdir()):
            assert self.proc.poll() is None, f"the run ended before it was at work: {self.stderr()}"
            assert time.monotonic() < deadline, f"never saw {count} descendants at work: {self.stderr()}"
            time.sleep(0.02)
        found = self.descendants()
        with contextlib.suppress(psutil.Error):  # the driver maps the semaphores it made
            self.shm |= shm_inodes([psutil.Process(self.proc.pid), *(self.procs[pid] for pid in found)])
        return found

    def watch_until_exit(self, timeout: float = HANG_GUARD_S) -> None:
        """Collect descendants until the driver exits (``timeout``: a hang guard)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"the run did not end: {self.stderr()}"
            self.descendants()
            time.sleep(0.01)

    def stop_the_work(self) -> int:
        """From now on Slow holds every item it starts (slow.py): the run can only end by
        what the test does next. The number of items done so far."""
        self.hold.touch()
        return self.items_done()

    def items_done(self) -> int:
        return sum(1 for _ in self.marks.iterdir())

    def adopt(self, pidfile: Path) -> int:
        """A process the workflow forked (its pid written to ``pidfile``): ended at cleanup."""
        pid = int(pidfile.read_text())
        with contextlib.suppress(psutil.NoSuchProcess):
            self.procs[pid] = psutil.Process(pid)
        return pid

    def stderr(self) -> str:
        return self.err_path.read_text()

    def kill_leftovers(self) -> None:
        """No process of the run outlives the test; its resource tracker is let end on its
        own, so that the run's named semaphores do not stay in /dev/shm (see ``kill_run``)."""
        with contextlib.suppress(psutil.Error):
            self.procs.setdefault(self.proc.pid, psutil.Process(self.proc.pid))
        leaked = kill_run([*self.procs.values()])  # psutil.Process: never a recycled pid
        self.proc.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        assert leaked == [], f"the run left {leaked} in /dev/shm"


@pytest.fixture
def drivers():
    started: list[Driver] = []
    yield started
    for driver in started:
        driver.kill_leftovers()


@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_forkserver_driver_signal_leaves_nothing(tmp_path, drivers, mapping: str, sig: int) -> None:
    driver = Driver(tmp_path, mapping, str(WORKFLOWS / "slow.py"), "-n", "3", "--start-method", "forkserver")
    drivers.append(driver)
    tree = driver.wait_for(5)  # resource tracker, forkserver, 3 workers
    done = driver.stop_the_work()
    driver.proc.send_signal(sig)
    driver.proc.wait(timeout=HANG_GUARD_S)
    left = wait_gone(sorted(tree), within=HANG_GUARD_S)  # held workers end only if made to
    assert left == [], [(p, driver.procs[p].cmdline(), driver.procs[p].status()) for p in left]
    assert driver.items_done() - done <= 3  # the items the 3 workers had started, no more
    assert list(driver.tmpdir.iterdir()) == []  # no pymp-* (nor any other) folder
    if mapping == "multi":  # its queues' semaphores (zmq_multi maps nothing there without large items)
        assert driver.shm, "the run mapped nothing under /dev/shm: the check below would be empty"
    assert driver.shm_left() == []  # no sem.mp-*: the resource tracker outlived the driver
    assert list(Path("/dev/shm").glob(f"d4py-shm-{driver.proc.pid}-*")) == []  # nor its arena
    err = driver.stderr()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    if sig == signal.SIGTERM:
        assert driver.proc.returncode == 143, err
        assert err.count("dispel4py:") == 1 and "dispel4py: terminated" in err, err


@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize(
    ("sig", "code", "message"),
    [(signal.SIGTERM, 143, "dispel4py: terminated"), (signal.SIGHUP, 129, "dispel4py: hangup")],
    ids=["SIGTERM", "SIGHUP"],
)
def test_sigterm_and_sighup_stop_the_run_like_ctrl_c(
    tmp_path, drivers, mapping: str, sig: int, code: int, message: str
) -> None:
    driver = Driver(tmp_path, mapping, str(WORKFLOWS / "slow.py"), "-n", "3")
    drivers.append(driver)
    tree = driver.wait_for(3)
    done = driver.stop_the_work()
    driver.proc.send_signal(sig)
    driver.proc.wait(timeout=HANG_GUARD_S)
    err = driver.stderr()
    assert driver.proc.returncode == code, err
    assert err.count("dispel4py:") == 1 and message in err, err
    assert "Traceback" not in err, err
    assert "Outputs:" not in driver.out_path.read_text()
    assert wait_gone(sorted(tree), within=HANG_GUARD_S) == []  # held workers end only if made to
    assert driver.items_done() - done <= 3  # the items the 3 workers had started, no more
    assert list(driver.tmpdir.iterdir()) == []


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_worker_death_reported_while_its_forked_helper_holds_the_pipe(
    tmp_path, drivers, mapping: str
) -> None:
    pidfile = tmp_path / "helper.pid"
    driver = Driver(
        tmp_path,
        mapping,
        str(WORKFLOWS / "life_helper_fork.py"),
        "-n",
        "2",
        env={"LIFE_HELPER_PIDFILE": str(pidfile), "LIFE_HELPER_S": HELPER_LIVES_S},
    )
    drivers.append(driver)
    try:
        driver.watch_until_exit()  # a driver waiting for the pipe's end would wait 600 s
    finally:
        if pidfile.exists():  # the helper is no descendant once its worker died: ended at cleanup
            driver.adopt(pidfile)
    err = driver.stderr()
    assert "worker dying at" in err, err
    assert driver.proc.returncode == 1, err
    assert re.search(r"worker \d died \(signal 9\) hosting .*ForkThenDie", err), err
    workers = set(driver.seen)
    helper = int(pidfile.read_text())
    assert psutil.pid_exists(helper)  # it still holds the worker's pipe, yet the death is known
    # the helper lives on, by design; every worker is gone
    assert wait_gone(sorted(workers - {helper}), within=HANG_GUARD_S) == []


def test_finished_worker_with_a_forked_helper_is_not_reported(tmp_path, drivers) -> None:
    pidfile = tmp_path / "helper.pid"
    driver = Driver(
        tmp_path,
        "multi",
        str(WORKFLOWS / "life_helper_fork.py"),
        "-n",
        "2",
        env={"LIFE_HELPER_PIDFILE": str(pidfile), "LIFE_HELPER_DIE": "0", "LIFE_HELPER_S": HELPER_LIVES_S},
    )
    drivers.append(driver)
    try:
        driver.watch_until_exit()  # a driver waiting for the helper to close the pipes would wait 600 s
    finally:
        if pidfile.exists():
            driver.adopt(pidfile)
    assert psutil.pid_exists(int(pidfile.read_text()))  # the run ended while the helper held them
    err = driver.stderr()
    assert driver.proc.returncode == 0, err
    assert "died" not in err and "error" not in err, err
    assert "Outputs:" in driver.out_path.read_text()


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_workers_ignoring_sigterm_do_not_delay_the_end(tmp_path, drivers, mapping: str) -> None:
    """Once Boom raises, Stubborn holds its item until killed (LIFE_HOLD_FILE): a driver that
    waited for it to finish, or to heed SIGTERM, would never end."""
    hold = tmp_path / "raised"
    env = {"LIFE_HOLD_FILE": str(hold)}
    driver = Driver(tmp_path, mapping, str(WORKFLOWS / "life_ignore_term.py"), "-n", "3", env=env)
    drivers.append(driver)
    driver.watch_until_exit()
    err = driver.stderr()
    assert hold.exists() and "ValueError: bad item 42" in err, err
    assert driver.proc.returncode == 1, err
    assert err.count("dispel4py: error:") == 1, err
    assert wait_gone(sorted(driver.seen), within=HANG_GUARD_S) == []


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_batch_size_zero_is_refused_before_anything_is_made(tmp_path, drivers, mapping: str) -> None:
    driver = Driver(
        tmp_path,
        mapping,
        str(WORKFLOWS / "slow.py"),
        "-n",
        "2",
        "--batch-size",
        "0",
        "--start-method",
        "forkserver",
    )
    drivers.append(driver)
    driver.watch_until_exit()
    err = driver.stderr()
    assert driver.proc.returncode == 2, err
    assert "--batch-size" in err and "at least 1" in err, err
    assert driver.seen == set()  # not a single process started
    assert list(driver.tmpdir.iterdir()) == []


def test_link_reads_what_is_there_and_drops_a_cut_frame() -> None:
    """The driver's end of a worker pipe never waits: complete frames are read, a frame cut
    short by a death is dropped, though the write end is still open (as a helper keeps it)."""
    import pickle

    from dispel4py.mappings.processes.link import LinkWriter, make_link

    reader, handle = make_link()
    writer = LinkWriter(handle)
    try:
        assert reader.read(drain=True) == []
        writer.send_bytes(pickle.dumps(("log", 1)))
        writer.send_bytes(pickle.dumps(("done", [])))
        whole = pickle.dumps(("results", list(range(1000))))
        os.write(handle.fd, (len(whole)).to_bytes(8, "big") + whole[:100])  # cut short
        assert reader.read(drain=True) == [("log", 1), ("done", [])]
        assert not reader.at_eof
    finally:
        writer.close()
        writer.close()  # idempotent
    assert reader.read(drain=True) == []
    assert reader.at_eof
    reader.close()
    reader.close()


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_a_temporary_folder_too_deep_for_the_forkserver_is_a_usage_error(tmp_path, mapping) -> None:
    """The forkserver listens on a Unix socket under TMPDIR; a deep TMPDIR (a batch system's
    per-job folder) makes its path too long: one line naming TMPDIR, exit 2, nothing left."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    done = subprocess.run(
        cli(mapping, str(WORKFLOWS / "slow.py"), "-n", "2", "--start-method", "forkserver"),
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "TMPDIR": str(deep)},
    )
    assert done.returncode == 2, done.stderr
    assert "set TMPDIR to a shorter folder" in done.stderr and str(deep) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("dispel4py: error:") == 1, done.stderr
    assert list(deep.iterdir()) == []
