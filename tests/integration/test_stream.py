"""``dispel4py.stream``: results while the run goes, on every mapping.

Each test looks only at this process's own children (psutil), taken before and while the
run goes, and at the files those children map under /dev/shm; Redis runs use a private
server on a free port. Backpressure is shown by counting, never by timing: the source
records how many items it has written, and the consumer checks, at every item, that the
run is never more than a bound (derived from the buffer and batch sizes) ahead of it.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import gc
import importlib.util
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from _helpers import WORKFLOWS
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

import dispel4py
from dispel4py.engine.tuning import Tuning
from dispel4py.errors import UsageError, WorkerDied, WorkflowFailed
from dispel4py.mappings.redis.queues import REPORTS_HIGH
from dispel4py.mappings.redis.run import STREAM_INBOX

pytestmark = pytest.mark.timeout(120)


def _load_workflows() -> Any:
    spec = importlib.util.spec_from_file_location("streamed", WORKFLOWS / "streamed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["streamed"] = module  # workers find the PE classes by this name
    spec.loader.exec_module(module)
    return module


flows = _load_workflows()

LOCAL = ["simple", "multi", "zmq_multi", "dyn_multi", "dyn_auto_multi", "timed_simple", "timed_multi"]
REDIS = ["dyn_redis", "dyn_auto_redis", "hybrid_redis", "redis"]


def _options(mapping: str, redis: RedisServer | None, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(extra)
    if mapping != "simple" and not mapping.startswith("timed_simple"):
        options.setdefault("num", 3)
    if mapping in REDIS and redis is not None:
        options["redis_url"] = redis.url
    if mapping.startswith("timed_"):
        options["timing_dir"] = str(tmp_path / "timings")
    return options


class OwnChildren:
    """This process's children that appear after it was made, and the /dev/shm files they map."""

    def __init__(self) -> None:
        self.before = {p.pid for p in psutil.Process().children(recursive=True)}
        self.seen: dict[int, psutil.Process] = {}
        self.names: set[str] = set()
        self.shm: set[str] = set()

    def look(self) -> None:
        for child in psutil.Process().children(recursive=True):
            if child.pid not in self.before:
                self.seen.setdefault(child.pid, child)
                self.shm |= _shm_files(child.pid)
                try:
                    self.names.add(child.name())
                except psutil.NoSuchProcess:
                    pass
        self.shm |= _shm_files(os.getpid())

    def alive(self) -> list[str]:
        alive = []
        for pid, proc in self.seen.items():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {proc.name()}")
            except psutil.NoSuchProcess:
                pass
        now = {p.pid for p in psutil.Process().children(recursive=True)} - self.before
        alive += [f"{pid} (new)" for pid in now if pid not in self.seen and _running(pid)]
        return alive

    def assert_clean(self, tmpdir: Path | None = None) -> None:
        assert not self.alive(), f"processes left: {self.alive()}"
        left = [path for path in self.shm if os.path.exists(path)]
        assert not left, f"/dev/shm files left: {left}"
        if tmpdir is not None:
            assert not list(tmpdir.iterdir()), f"left in TMPDIR: {list(tmpdir.iterdir())}"


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _shm_files(pid: int) -> set[str]:
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return {
                line.split(maxsplit=5)[-1].strip().removesuffix(" (deleted)")
                for line in maps
                if "/dev/shm/" in line
            }
    except OSError:
        return set()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """A private temporary folder for what runs make there (zmq socket folders)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# -- what comes out ---------------------------------------------------------------------------
@pytest.mark.parametrize("mapping", LOCAL + REDIS)
def test_stream_yields_what_run_returns(mapping: str, redis_server, tmp_path) -> None:
    graph, source = flows.two_outputs(300)
    options = _options(mapping, redis_server, tmp_path)
    streamed = collections.Counter(dispel4py.stream(graph, {source: 1}, mapping, **options))
    result = dispel4py.run(graph, {source: 1}, mapping, **options)
    expected = collections.Counter(
        (pe, port, item)
        for pe, ports in result.outputs.items()
        for port, items in ports.items()
        for item in items
    )
    assert streamed == expected
    assert sum(streamed.values()) == 600
    assert not redis_server.run_keys()


def test_items_come_while_the_run_goes(tmp_path) -> None:
    """The first item is in the consumer's hands before the source has written its last."""
    counter = str(tmp_path / "count")
    graph, source = flows.source_only(200, counter=counter, pause=0.01)
    for _ in dispel4py.stream(graph, {source: 1}, "multi", num=2):
        assert flows.produced(counter) < 200
        break


def test_the_graph_is_left_as_it_was_and_options_are_those_of_run(tmp_path) -> None:
    graph, source = flows.source_only(5)
    first = list(dispel4py.stream(graph, {source.id: 1}, "simple"))
    again = list(dispel4py.stream(graph, {source: [{}]}, "simple"))
    assert first == again == [(source.id, "output", (i, "x" * 8)) for i in range(5)]
    with pytest.raises(UsageError, match=r"mapping 'multi' has no option 'nmu'.*did you mean 'num'"):
        dispel4py.stream(graph, None, "multi", nmu=2)
    with pytest.raises(UsageError, match="--batch-size must be a whole number"):
        dispel4py.stream(graph, None, "multi", batch_size=0)
    with pytest.raises(UsageError, match="buffer must be a whole number of at least 1 \\(got 0\\)"):
        dispel4py.stream(graph, None, "multi", buffer=0)


def _open_files() -> set[tuple[str, str]]:
    """This process's open files as (fd, what it names): what an fd names tells a new pipe
    from one the test runner (pytest-xdist's channel) opened and closed meanwhile."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd of the listing itself is gone by now
            found.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
    return found


def test_an_iterator_never_started_makes_nothing() -> None:
    children = OwnChildren()
    before = _open_files()
    graph, source = flows.source_only(5)
    results = dispel4py.stream(graph, {source: 1}, "multi", num=2)
    del results
    gc.collect()
    children.look()
    assert not children.seen
    assert _open_files() - before == set()


# -- failures -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mapping", ["simple", "multi", "dyn_multi"])
def test_failure_is_raised_after_the_items_written_before_it(mapping: str, tmp_path) -> None:
    graph, source = flows.failing_source(50, fail_at=20)
    seen = []
    with pytest.raises(WorkflowFailed, match="source broke at item 20") as failed:
        for _, _, (i, _) in dispel4py.stream(
            graph, {source: 1}, mapping, **_options(mapping, None, tmp_path)
        ):
            seen.append(i)
    assert seen == list(range(20))
    assert failed.value.pe_id == source.id


@pytest.mark.parametrize("mapping", [*LOCAL, "dyn_redis"])
def test_failure_of_a_later_stage_ends_the_iterator(mapping: str, redis_server, tmp_path) -> None:
    graph, source = flows.two_outputs(200, fail_at=150)
    children = OwnChildren()
    seen = []
    with pytest.raises(WorkflowFailed, match="item 150 is bad"):
        for _, port, item in dispel4py.stream(
            graph, {source: 1}, mapping, **_options(mapping, redis_server, tmp_path)
        ):
            if port == "seen":
                seen.append(item)
            children.look()
    assert 150 not in seen and len(seen) == len(set(seen)) < 200
    children.assert_clean()
    assert not redis_server.run_keys()


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi"])
def test_a_worker_killed_mid_stream_is_raised_as_run_raises_it(mapping: str, tmp_path) -> None:
    graph, source = flows.killed_worker(500, at=200)
    children = OwnChildren()
    with pytest.raises(WorkerDied, match="died \\(signal 9\\)"):
        for _ in dispel4py.stream(graph, {source: 1}, mapping, num=2):
            children.look()
    children.assert_clean()


# -- backpressure ---------------------------------------------------------------------------------
def _pipe_bytes() -> int:
    read_fd, write_fd = os.pipe()
    try:
        return fcntl.fcntl(write_fd, 1032)  # F_GETPIPE_SZ
    finally:
        os.close(read_fd)
        os.close(write_fd)


def _bound(mapping: str, buffer: int, batch: int, item_bytes: int, workers: int) -> int:
    """The most items the run can have written and the consumer not yet taken.

    * the hand-off holds at most ``buffer``; a writer at most ``batch`` (then it ships, and
      waits while the hand-off is full);
    * the process mappings: the source's worker blocks writing to its pipe to the driver: at
      most one batch in that write, the pipe's bytes, and the pipe's bytes the driver has
      read and not handed over (each item is at least ``item_bytes`` pickled);
    * dyn_redis: entries of at most ``batch`` items wait on the reports stream while it
      holds more than REPORTS_HIGH (one more per worker that checked at the same time); the
      driver's reader reads up to STREAM_INBOX entries while it holds fewer than that, so
      its inbox holds at most 2 * STREAM_INBOX - 1, and as many again are being handed over.
    """
    if mapping == "simple":
        return buffer + batch
    if mapping in ("multi", "zmq_multi", "dyn_multi", "dyn_auto_multi", "timed_multi"):
        in_pipe = _pipe_bytes() // item_bytes + batch
        return buffer + batch + 2 * in_pipe
    assert mapping in REDIS
    return buffer + batch + (REPORTS_HIGH + workers + 2 * (2 * STREAM_INBOX - 1)) * batch


@pytest.mark.parametrize("mapping", ["simple", *LOCAL[1:5], "timed_multi", "dyn_redis", "dyn_auto_redis"])
def test_a_slow_consumer_holds_the_run_back(mapping: str, redis_server, tmp_path) -> None:
    size, buffer, batch = 1000, 32, 8
    options = _options(mapping, redis_server, tmp_path, num=2, batch_size=batch)
    if mapping == "simple":  # no --batch-size: a writer ships the default batch
        options, batch = {}, Tuning().batch_size
    bound = _bound(mapping, buffer, batch, size, 2)
    # three times the bound (at least 600): a run not held back shows as more than the
    # bound ahead; each item costs the consumer's 1 ms, so no more than that (3000 on every
    # mapping took 3.7 s each; the process mappings' bound is ~190)
    count = max(600, 3 * bound)
    counter = str(tmp_path / "count")
    graph, source = flows.source_only(count, size=size, counter=counter)
    assert bound < count / 2  # else the test could not tell
    worst = 0
    taken = 0
    stop = threading.Event()
    for taken, (_, _, (i, _)) in enumerate(
        dispel4py.stream(graph, {source: 1}, mapping, buffer=buffer, **options), 1
    ):
        assert i == taken - 1  # one source: in order, nothing lost or repeated
        worst = max(worst, flows.produced(counter) - taken)
        stop.wait(0.001)  # the slow consumer (its speed decides nothing: the bound is a count)
    assert taken == count
    print(f"{mapping}: at most {worst} items ahead of the consumer (bound {bound})")
    assert worst <= bound


# -- stopping early -------------------------------------------------------------------------------
STOPS = ["break", "exception", "garbage", "interrupt", "interrupt_waiting"]


def _stop_early(how: str, mapping: str, options: dict[str, Any], children: OwnChildren) -> None:
    graph, source = flows.source_only(100_000, pause=0.002 if how != "interrupt_waiting" else 0.2)
    if how == "break":
        for n, _ in enumerate(dispel4py.stream(graph, {source: 1}, mapping, **options)):
            children.look()
            if n == 20:
                break
    elif how == "exception":
        with pytest.raises(ZeroDivisionError):
            for n, _ in enumerate(dispel4py.stream(graph, {source: 1}, mapping, **options)):
                children.look()
                if n == 20:
                    print(1 / 0)
    elif how == "garbage":
        results = dispel4py.stream(graph, {source: 1}, mapping, **options)
        for _ in range(20):
            next(results)
            children.look()
        del results
        gc.collect()
    else:
        _interrupted(graph, source, mapping, options, children, waiting=how == "interrupt_waiting")


def _interrupted(graph, source, mapping, options, children, *, waiting: bool) -> None:
    """Ctrl-C (a real SIGINT to this process), in the loop body or while waiting for an item."""
    with pytest.raises(KeyboardInterrupt):
        for n, _ in enumerate(dispel4py.stream(graph, {source: 1}, mapping, **options)):
            children.look()
            if n == 2 and waiting:  # the next item is 0.2 s away: the signal finds us waiting
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
            elif n == 20:
                os.kill(os.getpid(), signal.SIGINT)
            if n > 1000:
                raise AssertionError("no KeyboardInterrupt")


@pytest.mark.parametrize("how", STOPS)
@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "dyn_redis"])
def test_stopping_early_leaves_nothing(mapping: str, how: str, redis_server, private_tmp, tmp_path) -> None:
    children = OwnChildren()
    _stop_early(how, mapping, _options(mapping, redis_server, tmp_path), children)
    assert children.seen or mapping == "simple", "the run's processes were never seen"
    children.assert_clean(private_tmp)
    assert not redis_server.run_keys()


@pytest.mark.parametrize("mapping", [m for m in LOCAL + REDIS if m not in ("multi", "dyn_multi")])
def test_break_on_every_other_mapping_leaves_nothing(
    mapping: str, redis_server, private_tmp, tmp_path
) -> None:
    children = OwnChildren()
    _stop_early("break", mapping, _options(mapping, redis_server, tmp_path), children)
    children.assert_clean(private_tmp)
    assert not redis_server.run_keys()


def test_break_with_an_embedded_redis_server_stops_it(private_tmp, tmp_path) -> None:
    children = OwnChildren()
    _stop_early("break", "dyn_redis", {"num": 2}, children)
    assert any("redis-server" in name for name in children.names), children.names
    children.assert_clean(private_tmp)


def test_a_stop_while_the_workers_are_busy_is_prompt(private_tmp, tmp_path) -> None:
    """No result for 0.2 s at a time: the stop reaches the driver's wait, not a hand-off."""
    children = OwnChildren()
    _stop_early("interrupt_waiting", "zmq_multi", _options("zmq_multi", None, tmp_path), children)
    children.assert_clean(private_tmp)


# -- mpi -------------------------------------------------------------------------------------------
_MPI_SCRIPT = """
import os, sys
sys.path.insert(0, {workflows!r})
import dispel4py
from streamed import two_outputs

graph, source = two_outputs(300)
stop_after = {stop_after}
rank = os.environ.get("PMI_RANK", "?")
got = []
options = {{"timing_dir": {timings!r}}} if {mapping!r} == "timed_mpi" else {{}}
for pe, port, item in dispel4py.stream(graph, {{source: 1}}, {mapping!r}, batch_size=8, buffer=16, **options):
    got.append((port, item))
    if len(got) == stop_after:
        break
line = f"rank {{rank}}: {{len(got)}} items, {{sum(1 for p, _ in got if p == 'seen')}} seen, after the loop"
with open(os.path.join({out!r}, f"rank{{rank}}.txt"), "w") as f:  # ranks' stdout lines may interleave
    f.write(line)
"""


@pytest.mark.mpi
@pytest.mark.parametrize(("mapping", "stop_after"), [("mpi", 0), ("mpi", 5), ("timed_mpi", 0)])
def test_under_mpiexec_rank_0_yields_and_the_others_end(mapping: str, stop_after: int, tmp_path) -> None:
    """Rank 0 gets every item; the other ranks' iterators do their share and end empty. A
    ``break`` on rank 0 lets the run finish without a consumer (stopping it would end every
    rank's process): every rank gets past its loop and exits 0."""
    from _helpers import mpiexec, run

    script = tmp_path / "stream_mpi.py"
    script.write_text(
        _MPI_SCRIPT.format(
            workflows=str(WORKFLOWS),
            stop_after=stop_after or -1,
            mapping=mapping,
            timings=str(tmp_path / "timings"),
            out=str(tmp_path),
        )
    )
    done = run([mpiexec(), "-n", "3", sys.executable, str(script)], timeout=90)
    assert done.returncode == 0, done.stderr
    lines = [(tmp_path / f"rank{rank}.txt").read_text() for rank in range(3)]
    expected_0 = "rank 0: 600 items, 300 seen" if not stop_after else f"rank 0: {stop_after} items"
    assert lines[0].startswith(expected_0), lines
    assert lines[1:] == ["rank 1: 0 items, 0 seen, after the loop", "rank 2: 0 items, 0 seen, after the loop"]


_MPI_SLOW = """
import os, sys, threading
sys.path.insert(0, {workflows!r})
import dispel4py
from streamed import off_rank_0, produced

graph, source = off_rank_0({count}, size=1000, counter={counter!r})
worst = taken = 0
pause = threading.Event()
for taken, _ in enumerate(dispel4py.stream(graph, None, "mpi", batch_size={batch}, buffer={buffer}), 1):
    worst = max(worst, produced({counter!r}) - taken)
    pause.wait(0.001)
if os.environ.get("PMI_RANK") == "0":
    print(f"taken {{taken}} worst {{worst}}", flush=True)
"""


@pytest.mark.mpi
def test_under_mpiexec_a_slow_consumer_holds_every_rank_back(tmp_path) -> None:
    """The source on rank 1 (rank 0 hosts a PE that writes nothing). Ranks other than 0
    send results synchronously, at most _RESULT_SENDS unmatched, so the source's rank holds
    those, the batch being sent and the one its writer fills; rank 0 holds one batch being
    handed over and the hand-off's ``buffer``."""
    from _helpers import mpiexec, run

    from dispel4py.mappings.mpi.transport import RESULT_SENDS as _RESULT_SENDS

    count, batch, buffer, ranks = 3000, 8, 32, 3
    script = tmp_path / "stream_mpi_slow.py"
    counter = str(tmp_path / "count")
    script.write_text(
        _MPI_SLOW.format(workflows=str(WORKFLOWS), count=count, counter=counter, batch=batch, buffer=buffer)
    )
    done = run([mpiexec(), "-n", str(ranks), sys.executable, str(script)], timeout=110)
    assert done.returncode == 0, done.stderr
    taken, worst = (int(w) for w in done.stdout.split()[1::2])
    bound = buffer + batch + (_RESULT_SENDS + 2) * batch
    print(f"mpi: at most {worst} items ahead of the consumer (bound {bound})")
    assert taken == count and worst <= bound < count / 2
