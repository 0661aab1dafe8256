"""zmq_multi's endpoints: nothing on disk, any TMPDIR, no collision, clear errors.

On Linux the workers' inboxes are abstract socket names; elsewhere socket files in a
private folder (forced here by patching ``_abstract_names``, so Linux CI checks both).
"""

from __future__ import annotations

import ast
import os
import re
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import zmq
from _helpers import WORKFLOWS, cli, descendants_alive, run, wait_gone

import dispel4py
from dispel4py.errors import TransportError, UsageError
from dispel4py.mappings.processes import zmq_multi

pytestmark = pytest.mark.timeout(60)
LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="abstract socket names are Linux only")


def _private_tmpdir(tmp_path: Path, length: int = 0) -> Path:
    """An empty folder for TMPDIR, with a path of at least ``length`` characters."""
    pad = max(8, length - len(str(tmp_path)) - 1)
    folder = tmp_path / ("t" * pad)
    folder.mkdir()
    assert len(str(folder)) >= length
    return folder


def _totals(stdout: str) -> list[int]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("Outputs: "))
    outputs = ast.literal_eval(line[len("Outputs: ") :])
    return next(ports["total"] for pe, ports in outputs.items() if pe.startswith("Sum"))


def _crossfeed_graph():
    return runpy.run_path(str(WORKFLOWS / "crossfeed.py"))["graph"]


def _run_crossfeed(**options) -> int:
    result = dispel4py.run(_crossfeed_graph(), None, "zmq_multi", **options)
    return sum(next(ports["total"] for pe, ports in result.outputs.items() if pe.startswith("Sum")))


def _sockets_of_run(driver_pid: int) -> list[str]:
    """The abstract socket names of the run whose driver had ``driver_pid``."""
    with open("/proc/net/unix") as table:
        return [line for line in table if f"@d4py-{driver_pid}-" in line]


# -- the command line: TMPDIR, signals, concurrent runs ------------------------------------
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_tmpdir_path_of_150_characters_works_and_stays_empty(tmp_path: Path, start_method: str) -> None:
    private = _private_tmpdir(tmp_path, 150)
    done = run(
        cli("zmq_multi", str(WORKFLOWS / "crossfeed.py"), "-n", "3", "--start-method", start_method),
        env={"TMPDIR": str(private)},
    )
    assert done.returncode == 0, done.stderr
    assert sum(_totals(done.stdout)) == 1000
    assert list(private.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_to_the_driver_leaves_no_file_socket_or_process(tmp_path: Path, sig: signal.Signals) -> None:
    private = _private_tmpdir(tmp_path)
    marks, hold = tmp_path / "marks", tmp_path / "hold"  # slow.py's: items done, hold from then on
    marks.mkdir()
    proc = subprocess.Popen(
        cli("zmq_multi", str(WORKFLOWS / "slow.py"), "-n", "3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(private), "D4PY_MARK_DIR": str(marks), "D4PY_HOLD_FILE": str(hold)},
    )
    deadline = time.monotonic() + 30  # a hang guard
    while len(descendants_alive(proc.pid)) < 3 or not any(marks.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "the run never got to work"
        time.sleep(0.02)
    # the workers are exchanging items now; from now on Slow holds every item it starts, so the
    # run can only end by the signal, never by finishing its work
    hold.touch()
    tree = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    assert len(tree) >= 3
    if LINUX:  # the check below looks at the right names
        while not _sockets_of_run(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sockets_of_run(proc.pid)
    proc.send_signal(sig)
    proc.communicate(timeout=30)  # the exit code is the CLI's business, not the transport's
    assert wait_gone(tree, within=30) == []  # a hang guard: held workers end only if made to
    assert list(private.iterdir()) == []
    if LINUX:
        assert _sockets_of_run(proc.pid) == []


def test_two_concurrent_runs_give_their_own_results(tmp_path: Path) -> None:
    private = _private_tmpdir(tmp_path)
    items = [1500, 2300]  # different totals: an item delivered to the wrong run shows
    procs = [
        subprocess.Popen(
            cli("zmq_multi", str(WORKFLOWS / "crossfeed.py"), "-n", "3", "--batch-size", "7"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": str(private), "D4PY_ITEMS": str(n)},
        )
        for n in items
    ]
    for proc, n in zip(procs, items):
        out, err = proc.communicate(timeout=50)
        assert proc.returncode == 0, err
        assert sum(_totals(out)) == n
    assert list(private.iterdir()) == []


def test_bad_option_creates_nothing_on_disk(tmp_path: Path) -> None:
    private = _private_tmpdir(tmp_path)
    done = run(
        cli("zmq_multi", str(WORKFLOWS / "crossfeed.py"), "-n", "2", "--batch-size", "0"),
        env={"TMPDIR": str(private)},
    )
    assert done.returncode == 2
    assert "--batch-size must be" in done.stderr
    assert list(private.iterdir()) == []


# -- the endpoints ---------------------------------------------------------------------------
@linux_only
def test_abstract_names_are_unique_per_run_and_worker(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first, second = zmq_multi.ZmqChannels(3), zmq_multi.ZmqChannels(3)
    pattern = re.compile(rf"ipc://@d4py-{os.getpid()}-[0-9a-f]{{16}}-w(\d+)")
    for channels in (first, second):
        assert [int(pattern.fullmatch(e).group(1)) for e in channels.endpoints] == [0, 1, 2]
        assert channels.folder is None
    assert not set(first.endpoints) & set(second.endpoints)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("abstract", [True, False], ids=["abstract", "files"])
def test_driver_and_peers_reach_every_inbox(tmp_path: Path, monkeypatch, abstract: bool) -> None:
    if abstract and not LINUX:
        pytest.skip("abstract socket names are Linux only")
    monkeypatch.setattr(zmq_multi, "_abstract_names", lambda: abstract)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    channels = zmq_multi.ZmqChannels(2)
    transports = [channels.open(w) for w in range(2)]
    try:
        for transport in transports:
            transport.inbox.setsockopt(zmq.RCVTIMEO, 5000)  # a broken endpoint fails, not hangs
        transports[0].send(1, ("data", 1))
        transports[1].send(0, ("data", 0))
        assert [t.recv() for t in transports] == [("data", 0), ("data", 1)]
        for worker in (1, 0):
            channels.send_from_driver(worker, ("Q",))
        assert [t.recv() for t in transports] == [("Q",), ("Q",)]
    finally:
        for transport in transports:
            transport.close()
        channels.close()
        channels.close()  # idempotent
    assert list(tmp_path.iterdir()) == []


@linux_only
def test_taken_endpoint_is_a_clear_transport_error(monkeypatch) -> None:
    name = f"d4py-test-{os.getpid()}-taken"
    monkeypatch.setattr(zmq_multi, "_run_name", lambda: name)
    context = zmq.Context()
    squatter = context.socket(zmq.PULL)
    squatter.bind(f"ipc://@{name}-w1")
    before = {p.pid for p in psutil.Process().children()}  # e.g. a session's redis-server
    try:  # pytest-timeout is the hang guard
        with pytest.raises(TransportError) as info:
            _run_crossfeed(num=3)
    finally:
        squatter.close(linger=0)
        context.term()
    assert str(info.value) == (
        f"worker 1 cannot bind its ZeroMQ endpoint ipc://@{name}-w1: Address already in use "
        "(another process holds this name; run the workflow again)"
    )
    assert wait_gone([p.pid for p in psutil.Process().children() if p.pid not in before]) == []


# -- the file fallback (other platforms) -----------------------------------------------------
def test_file_fallback_runs_and_removes_its_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(zmq_multi, "_abstract_names", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert _run_crossfeed(num=3) == 1000
    assert list(tmp_path.iterdir()) == []


def test_file_fallback_refuses_a_long_tmpdir_before_making_anything(tmp_path: Path, monkeypatch) -> None:
    private = _private_tmpdir(tmp_path, 150)
    monkeypatch.setattr(zmq_multi, "_abstract_names", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with pytest.raises(TransportError, match=r"set TMPDIR to a folder with a path of at most \d+ characters"):
        _run_crossfeed(num=3)
    assert list(private.iterdir()) == []


def test_file_fallback_bad_option_creates_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(zmq_multi, "_abstract_names", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(UsageError, match="--batch-size must be"):
        _run_crossfeed(num=2, batch_size=0)
    assert list(tmp_path.iterdir()) == []
