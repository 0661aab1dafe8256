"""The writer process of a worker's records (``provenance/pipestore.py``,
``bulkwriter.py``): it writes exactly what the worker would have written itself, the files
are complete when the run returns, it never outlives the run however the run ends (a
signal to the driver, any start method, a process forked from a worker), and a writer
that cannot write is one clear error."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _helpers import WORKFLOWS, cli, wait_gone

from dispel4py.provenance.lineage_json import InstanceFormat, Serialiser, lineage_texts
from dispel4py.provenance.pipestore import start_writer

pytestmark = pytest.mark.timeout(90)

WRITER = {"DISPEL4PY_PROV_WRITER_RATE": "0"}  # the writer starts with the second batch


def _format(name: str) -> InstanceFormat:
    const = Serialiser().dumps({"name": name, "type": "lineage", "pid": "1", "stateful": False})
    return InstanceFormat(f"{name}0", const[1:-1], True, ["input", "output"])


def _batch(rng: random.Random, n: int, start: int) -> list[tuple]:
    now = time.time_ns()
    return [
        (
            rng.choice((1, 2)),
            f"P-h-{i}",
            i,
            now,
            now + rng.randrange(10**9),
            [("input", f"h-{i - 1}", "S-h-0", "S0", i)] * rng.randrange(3),
            f"h-{i}",
            rng.choice(("output", "input", 'other "port"')),
            rng.randrange(100),
            None if rng.random() < 0.5 else '[{"v":1}]',
            None,
            None,
        )
        for i in range(start, start + n)
    ]


def _read(folder: Path) -> list[list[dict]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("bulk_*"))]


def test_the_writer_writes_what_the_worker_would_have(tmp_path) -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    formats = {1: _format("P"), 2: _format("Q")}
    writer = start_writer(str(tmp_path))
    assert writer is not None
    batches = [_batch(rng, rng.randrange(1, 50), 100 * k) for k in range(8)]
    for batch in batches:
        writer.put_pending(batch, formats)
    writer.close()  # the files are complete when it returns
    assert writer.process.returncode == 0 and writer.failed == 0
    expected = [[json.loads(t) for t in lineage_texts(b, formats, Serialiser())] for b in batches]
    key = lambda batch: batch[0]["_id"]  # noqa: E731 - files are listed by name, not in order
    assert sorted(_read(tmp_path), key=key) == sorted(expected, key=key)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_batch_marshal_cannot_carry_is_made_json_by_the_worker(tmp_path) -> None:
    class Port(str):  # a str subclass: JSON writes it, marshal refuses it
        pass

    formats = {1: _format("P")}
    writer = start_writer(str(tmp_path))
    assert writer is not None
    batch = [(1, "P-h-1", 1, time.time_ns(), time.time_ns(), [], "h-1", Port("out"), 3, None, None, None)]
    writer.put_pending(batch, formats)
    writer.close()
    ((record,),) = _read(tmp_path)
    assert record["streams"][0]["port"] == "out"


def test_a_writer_that_cannot_write_is_one_clear_error(tmp_path) -> None:
    folder = tmp_path / "gone"
    writer = start_writer(str(folder))  # a folder that does not exist: the first file fails
    assert writer is not None
    rng = random.Random(1)
    with pytest.raises(OSError, match=f"cannot write provenance records to {folder}"):
        for k in range(200):  # the writer ends at its first batch: a later send or close says why
            writer.put_pending(_batch(rng, 20, 20 * k), {1: _format("P"), 2: _format("Q")})
        writer.close()
    writer.close()  # said once: closing again is quiet
    assert writer.process.returncode == 1


def test_a_forked_child_does_not_keep_the_writer_waiting(tmp_path) -> None:
    """A process forked after the writer started (a worker, a PE's helper) closes its copy of
    the pipe: the writer sees the end when the process that started it closes it."""
    writer = start_writer(str(tmp_path))
    assert writer is not None
    writer.put_pending(_batch(random.Random(2), 5, 0), {1: _format("P"), 2: _format("Q")})
    child = os.fork()
    if child == 0:  # the child lives on for longer than the test's timeout
        time.sleep(120)
        os._exit(0)
    try:
        began = time.monotonic()
        writer.close()
        assert time.monotonic() - began < 30
        assert len(_read(tmp_path)) == 1
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def _writers_of(root: psutil.Process) -> list[psutil.Process]:
    try:
        tree = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for proc in tree:
        try:
            if "dispel4py.provenance.bulkwriter" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize(
    ("mapping", "sig"),
    [
        (("simple",), signal.SIGTERM),
        (("simple",), signal.SIGKILL),
        (("multi", "-n", "3", "--start-method", "fork"), signal.SIGKILL),
        (("multi", "-n", "3", "--start-method", "spawn"), signal.SIGTERM),
        (("multi", "-n", "3", "--start-method", "forkserver"), signal.SIGKILL),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else signal.Signals(v).name,
)
def test_no_writer_outlives_a_signalled_driver(tmp_path, mapping, sig) -> None:
    """2000 items of 50 ms: the writers run when the driver is signalled; they are gone
    within a few seconds (the end of their pipe, or their run's process gone)."""
    args = [*mapping, str(WORKFLOWS / "slow.py"), "--provenance-path", str(tmp_path / "prov")]
    err_path = tmp_path / "err.txt"
    with open(err_path, "w") as err:
        driver = subprocess.Popen(
            cli(*args, "--provenance-bulk-size", "2"),
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **WRITER},
        )
    root = psutil.Process(driver.pid)
    writers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 40
        while not writers:
            assert driver.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, "no writer process started"
            time.sleep(0.05)
            writers = _writers_of(root)
        driver.send_signal(sig)
        driver.wait(timeout=20)
        left = wait_gone([w.pid for w in writers], within=10.0)
        assert left == [], [psutil.Process(p).cmdline() for p in left]
        assert "Traceback" not in err_path.read_text()
    finally:
        for proc in (root, *writers):
            try:
                proc.kill()
            except psutil.Error:
                pass
        driver.wait()


def test_a_run_returns_with_every_file_complete(tmp_path) -> None:
    """The run returns after its writers: every record of every item is there, no half file."""
    folder = tmp_path / "prov"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from prov_fast import graph; import dispel4py; "
        "dispel4py.run(graph, {'Numbers0': 1}, 'multi', num=3, "
        "provenance={'path': sys.argv[2], 'bulk_size': 7})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent / "workflows"), str(folder)],
        capture_output=True,
        text=True,
        timeout=80,
        env={**os.environ, **WRITER},
    )
    assert done.returncode == 0, done.stderr
    records = [r for batch in _read(folder) for r in batch if r["type"] == "lineage"]
    assert sorted(r["name"] for r in records).count("Numbers") == 3000
    assert sorted(r["name"] for r in records).count("Plus") == 3000
    assert len({r["_id"] for r in records}) == len(records) == 6000
    assert not list(folder.glob(".*"))


def test_a_writer_that_cannot_start_is_one_warning(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with caplog.at_level("WARNING", logger="dispel4py.provenance"):
        assert start_writer(str(tmp_path)) is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("the provenance writer process cannot start (")
    assert message.endswith("this process writes its records itself")


def test_a_message_cut_by_ctrl_c_ends_the_writer_with_what_came_before(tmp_path, monkeypatch) -> None:
    """Ctrl-C in the middle of sending a batch: the batches before it are written, the cut
    one is dropped, the writer ends, and nothing more is sent to it."""
    formats = {1: _format("P"), 2: _format("Q")}
    writer = start_writer(str(tmp_path))
    assert writer is not None
    writer.put_pending(_batch(random.Random(3), 5, 0), formats)
    real_write = os.write
    calls = []

    def cut(fd: int, data: bytes) -> int:
        if calls:
            raise KeyboardInterrupt
        calls.append(fd)
        return real_write(fd, bytes(data)[:100])  # a part of the message, then Ctrl-C

    monkeypatch.setattr(os, "write", cut)
    with pytest.raises(KeyboardInterrupt):
        writer.put_pending(_batch(random.Random(4), 50, 100), formats)
    monkeypatch.setattr(os, "write", real_write)
    assert writer.fd == -1 and writer.process.returncode == 0
    ((first, *_),) = _read(tmp_path)  # the batch before, alone
    assert first["_id"] == "P0_write_h-0" or first["_id"] == "Q0_write_h-0"
    with pytest.raises(OSError, match="is closed"):
        writer.put([])
    writer.close()  # quiet
