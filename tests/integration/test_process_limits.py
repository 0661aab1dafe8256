"""``-n`` far above the machine: a warning once, and one clear line when the OS refuses.

The refusal is real: the run is started inside a pids cgroup of its own (cgroup v1
``pids.max``, ``/sys/fs/cgroup/pids``), which the kernel enforces for every user, root
included, on processes and threads alike. ``RLIMIT_NPROC`` was the first idea, but the
tests run as root, for whom the kernel does not enforce it, and an unprivileged user cannot
run this Python (it lives under ``/root``). The cgroup also counts exactly the run's own
processes, so "nothing left behind" is ``pids.current`` going back to 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers import IN_CI, cli, run

from dispel4py.mappings.processes.capacity import AT_LEAST, PER_CORE, warn_far_above_cores

pytestmark = pytest.mark.timeout(180)

PIDS_ROOT = Path("/sys/fs/cgroup/pids")
SLOW_STAGE = str(Path(__file__).parents[2] / "examples" / "observe" / "slow_stage.py")


@pytest.fixture
def pids_cgroup() -> Iterator[Path]:
    """A fresh pids cgroup; whatever is still in it at the end is killed, then it goes."""
    group = PIDS_ROOT / f"d4py-test-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
    except OSError as exc:
        message = f"no pids cgroup to limit a run's processes ({PIDS_ROOT}: {exc})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            os.kill(int(pid), 9)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def _run_limited(group: Path, limit: int, args: list[str]) -> subprocess.CompletedProcess[str]:
    (group / "pids.max").write_text(str(limit))

    def enter() -> None:  # in the child, before exec: it and all it starts count in the group
        (group / "cgroup.procs").write_text(str(os.getpid()))

    return subprocess.run(args, capture_output=True, text=True, timeout=150, preexec_fn=enter)


def _nothing_left(group: Path, within: float = 15.0) -> int:
    deadline = time.monotonic() + within
    while (left := int((group / "pids.current").read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "dyn_auto_multi", "dyn_redis"])
def test_a_refused_process_or_thread_is_one_line_and_exit_1(mapping: str, pids_cgroup: Path) -> None:
    """dyn_redis starts its private redis-server first: it goes too."""
    done = _run_limited(pids_cgroup, 40, cli(mapping, SLOW_STAGE, "-n", "100"))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert lines[-1].startswith("dispel4py: error: the operating system refused a new "), done.stderr
    assert "use a smaller -n/--num" in lines[-1]
    assert [x for x in lines if x.startswith("-n 100 is far above")], done.stderr
    assert len(lines) == 3, done.stderr  # the warning, the banner, the error
    assert done.stdout == ""
    assert _nothing_left(pids_cgroup) == 0


def test_zmq_multi_refused_ends_with_the_same_line(pids_cgroup: Path) -> None:
    """libzmq prints its own line for each thread it could not start (C code, before it
    aborts that worker); the run still ends with the one error line and leaves nothing."""
    done = _run_limited(pids_cgroup, 40, cli("zmq_multi", SLOW_STAGE, "-n", "100"))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].startswith("dispel4py: error: the operating system refused a new ")
    assert _nothing_left(pids_cgroup) == 0


def test_far_above_the_cores_warns_once_and_runs(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    num = max(AT_LEAST, PER_CORE * cores) + 1
    count = '{"Numbers": [{"count": 20}]}'
    done = run(cli("dyn_multi", SLOW_STAGE, "-n", str(num), "-d", count), timeout=150)
    assert done.returncode == 0, done.stderr
    warnings = [x for x in done.stderr.splitlines() if "is far above this machine's" in x]
    assert warnings == [
        f"-n {num} is far above this machine's {cores} core{'' if cores == 1 else 's'}: every worker is a "
        f"Python process of its own (start-up time, memory); unless the PEs mostly wait, a run is fastest "
        f"with -n near {cores}"
    ], done.stderr
    assert "Outputs: {'Total3': {'total': [1900]}}" in done.stdout


def test_up_to_the_threshold_nothing_is_said() -> None:
    assert not warn_far_above_cores(AT_LEAST, cores=1)
    assert not warn_far_above_cores(PER_CORE * 8, cores=8)
    assert warn_far_above_cores(PER_CORE * 8 + 1, cores=8)
    assert warn_far_above_cores(1000, cores=2)


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "dyn_redis"])
def test_n_0_is_a_usage_error_before_the_banner(mapping: str) -> None:
    done = run(cli(mapping, SLOW_STAGE, "-n", "0" if mapping != "dyn_redis" else "-1"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"dispel4py: error: -n/--num must be at least {1 if mapping != 'dyn_redis' else 0} "
        f"(got {0 if mapping != 'dyn_redis' else -1})"
    ]


def test_the_python_api_gets_the_error_as_an_exception(pids_cgroup: Path, tmp_path: Path) -> None:
    script = tmp_path / "api.py"
    script.write_text(
        "import runpy, dispel4py\n"
        "from dispel4py.errors import ResourcesRefused\n"
        f"graph = runpy.run_path({SLOW_STAGE!r})['graph']\n"
        "try:\n"
        "    dispel4py.run(graph, None, 'multi', num=100)\n"
        "except ResourcesRefused as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = _run_limited(pids_cgroup, 40, [sys.executable, str(script)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: the operating system refused a new "), done.stdout
    assert _nothing_left(pids_cgroup) == 0


THREADS = """
import threading
from dispel4py.base import ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Helpers(ProducerPE):
    def _process(self, inputs):
        release = threading.Event()
        started = []
        try:
            for _ in range(50):  # far more than the cgroup allows
                thread = threading.Thread(target=release.wait)
                thread.start()
                started.append(thread)
        finally:
            release.set()
            for thread in started:
                thread.join()
        self.write("output", len(started))


graph = WorkflowGraph()
graph.add(Helpers())
"""


def test_a_thread_refused_inside_a_pe_call_is_the_same_line_without_a_replay_file(
    pids_cgroup: Path, tmp_path: Path
) -> None:
    """The limit, not the PE's code, is at fault: no replay file is saved for it."""
    workflow = tmp_path / "threads.py"
    workflow.write_text(THREADS)
    (pids_cgroup / "pids.max").write_text("10")

    def enter() -> None:
        (pids_cgroup / "cgroup.procs").write_text(str(os.getpid()))

    env = {k: v for k, v in os.environ.items() if k != "DISPEL4PY_REPLAY_DIR"}  # the default: ./.dispel4py
    args = cli("simple", str(workflow))
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=60, preexec_fn=enter, cwd=tmp_path, env=env
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        "dispel4py: error: the operating system refused a new thread while Helpers0 (instance 0) ran process"
    ), done.stderr
    assert not (tmp_path / ".dispel4py").exists()
    assert _nothing_left(pids_cgroup) == 0
