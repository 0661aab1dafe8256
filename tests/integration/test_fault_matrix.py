"""The fault matrix: every way a run can fail, on every mapping, ends it the same way.

A fault - a PE raising in preprocess, process or postprocess, ``sys.exit`` or ``os._exit``
in a PE, an item that cannot be pickled, SIGKILL of a worker, SIGINT/SIGTERM/SIGHUP to the
driver - must end the run because of the fault, with the documented exit code, one
``dispel4py:`` line on stderr naming what failed, no traceback but the user's, no results on
stdout, and nothing behind it: no process of the run left, an empty TMPDIR, none of the
/dev/shm (or hydra /tmp) files it held.

No check reads a clock. From the fault on (or from just before the test causes one), the
workflow's ``Work`` and ``Busy`` hold every item they start until their process is ended
(``FAULT_HOLD=1``): a run that went on with its work, or waited for a worker to finish,
would never end. Every wait is a hang guard (``HANG_GUARD_S``) that returns as soon as the
run is over. The mappings' own safety nets (a worker that does not end within seconds of
SIGKILL, or of the end of the run) say so on stderr when they fire: those words fail a cell.

One workflow (``workflows/fault_pipeline.py``) makes every in-workflow fault, once per run,
and records when it happened; for the faults from outside, the same workflow runs slowly
and the test sends the signal once an instance of ``Work`` has items. Under ``mpi`` the
driver is ``mpiexec`` and a worker is a rank.

Cells left out, because the fault does not exist there:

* ``simple`` x ``os-exit``: the PE runs in the one and only process, so ``os._exit`` ends
  the program there and then; nothing is left to report it (nor to leave behind).
* ``simple`` x ``SIGKILL-worker``: ``simple`` has no worker process.
* ``simple`` x ``unpicklable``: ``simple`` never pickles an item; the locks just travel.
* ``dyn_redis`` x ``os-exit`` and ``SIGKILL-worker``: there a worker that dies while running
  a shared task is not a failure of the run: its task goes back to the queue and another
  worker runs it (``test_redis_faults.py`` checks that, and that the death of a worker
  hosting a pinned instance fails the run naming it).

``dyn_redis`` runs on its private embedded server, which must be gone with the run too.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import WORKFLOWS, WatchedRun, cli, mpiexec

pytestmark = pytest.mark.timeout(40)

WORKFLOW = str(WORKFLOWS / "fault_pipeline.py")
WORKERS = 3
HANG_GUARD_S = 30.0  # for the run to end, and again for every process of it to be gone
MAPPINGS = ["simple", "multi", "zmq_multi", "dyn_multi", "dyn_auto_multi", "mpi", "dyn_redis"]
IN_WORKFLOW = ["raise-preprocess", "raise-process", "raise-postprocess", "sys-exit", "os-exit", "unpicklable"]
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}
FROM_OUTSIDE = ["SIGKILL-worker", *SIGNALS]
NOT_ON_SIMPLE = {"os-exit", "SIGKILL-worker", "unpicklable"}  # why: the module docstring
NOT_ON_REDIS = {"os-exit", "SIGKILL-worker"}  # why: the module docstring
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}  # every other fault: 1
SIGNAL_LINES = {
    "SIGINT": "dispel4py: interrupted",
    "SIGTERM": "dispel4py: terminated (SIGTERM)",
    "SIGHUP": "dispel4py: hangup (SIGHUP)",
}
# mpiexec (hydra) says these two lines on stdout at the first Ctrl-C, before any rank hears of it
HYDRA_CTRL_C = ["Sending Ctrl-C to processes as requested", "Press Ctrl-C again to force abort"]
SAFETY_NETS = ("still running", "did not end")  # pool.py, driver_pool.py: a timeout, not the protocol
NOISE = ("Exception ignored", "leaked", "BrokenPipeError", "Abort(", "BAD TERMINATION", "KeyboardInterrupt")


# mpiexec (hydra) does not handle SIGHUP: it dies of it at once, without a word (a shell then
# says 129, the documented code, but as a death by signal: Popen's returncode is -SIGHUP).
# What holds, and is checked: that status, no line at all, and the ranks, their guards and
# files gone as after any other fault.
_MPI_SIGHUP = ("mpi", "SIGHUP")


def _cells() -> Iterator[Any]:
    for mapping in MAPPINGS:
        for fault in IN_WORKFLOW + FROM_OUTSIDE:
            if mapping == "simple" and fault in NOT_ON_SIMPLE:
                continue
            if mapping == "dyn_redis" and fault in NOT_ON_REDIS:
                continue
            marks = [pytest.mark.mpi] if mapping == "mpi" else []
            yield pytest.param(mapping, fault, id=f"{mapping}-{fault}", marks=marks)


@pytest.fixture
def runs() -> Iterator[list[WatchedRun]]:
    started: list[WatchedRun] = []
    yield started
    for run in started:
        run.kill_leftovers()


def _command(mapping: str) -> list[str]:
    if mapping == "mpi":
        return [mpiexec(), "-n", str(WORKERS), *cli("mpi", WORKFLOW)]
    return cli(mapping, WORKFLOW, *([] if mapping == "simple" else ["-n", str(WORKERS)]))


def _where(mapping: str, pid: int) -> str:
    """How a PE failure says where it happened."""
    if mapping == "simple":
        return ""
    if mapping == "mpi":
        return r" \[rank \d+ on [^\]]+\]"
    return rf" \[worker \d+, pid {pid} on [^\]]+\]"


def _expected_line(mapping: str, fault: str, fault_record: dict[str, Any], victim: int | None) -> str | None:
    """A regex for the one ``dispel4py:`` line of the cell (None: no line can be said)."""
    if fault in SIGNALS:
        if mapping != "mpi":
            return f"^{re.escape(SIGNAL_LINES[fault])}$"
        if fault == "SIGHUP":
            return None  # hydra does not handle SIGHUP: see _MPI_SIGHUP
        return rf"^dispel4py: error: {'interrupted' if fault == 'SIGINT' else 'terminated'} \({fault}\)"
    instance, item, pid = fault_record.get("instance"), fault_record.get("item"), fault_record.get("pid")
    pe = rf"^dispel4py: error: PE Work1 \(instance {instance}\) failed in"
    on_item = rf"process on input 'input' with item {item}{_where(mapping, pid)}"
    if fault.startswith("raise-"):
        phase = fault.removeprefix("raise-")
        if phase == "process":
            return rf"{pe} {on_item}: ValueError: boom in process on item {item}$"
        return rf"{pe} {phase}{_where(mapping, pid)}: ValueError: boom in {phase}$"
    if fault == "sys-exit":
        return rf"{pe} {on_item}: it called sys\.exit\(4\)"
    if fault == "unpicklable":
        return (
            r"^dispel4py: error: .*cannot send item <unlocked _thread\.lock object at 0x[0-9a-f]+> "
            r"written by Numbers0\.output to Work1 input 'input'( on (worker|rank) \d+)?: "
            r"it cannot be pickled"
        )
    if mapping == "mpi":
        how = "exited with status 3" if fault == "os-exit" else r"was killed by signal 9 \(SIGKILL\)"
        dead = pid if fault == "os-exit" else victim
        hosting = r"hosting .*Work1 \(instance \d+\).*"
        return rf"^dispel4py: error: rank \d+ \(pid {dead} on [^,]+, {hosting}\) {how}"
    how = "exit code 3" if fault == "os-exit" else "signal 9"
    return rf"^dispel4py: error: worker \d+ died \({how}\) .*Work1 \(instance \d+\)"


def _start_outside_fault(run: WatchedRun, fault_dir: Path, fault: str) -> tuple[float, int]:
    """Once an instance of Work has items: the fault, its wall time and the pid of that instance."""
    working = run.wait_until(lambda: sorted(fault_dir.glob("working-*")), "an instance of Work at work")
    busy = int(working[0].name.removeprefix("working-"))
    run.poll()
    (fault_dir / "outside").touch()  # from now on Work and Busy hold every item they start
    if fault == "SIGKILL-worker":
        assert busy in run.procs, f"Work ran in pid {busy}, which is no worker of this run"
        at = time.time()
        run.procs[busy].kill()
    else:
        at = time.time()
        run.process.send_signal(SIGNALS[fault])
    return at, busy


def _ending_problems(run: WatchedRun, mapping: str, fault: str) -> tuple[list[str], float]:
    """What is wrong with the exit and what it left; how long its processes took to be gone
    (reported, not checked: held processes would never go by themselves)."""
    found = []
    code = -signal.SIGHUP if (mapping, fault) == _MPI_SIGHUP else EXIT_CODES.get(fault, 1)
    if run.process.returncode != code:
        found.append(f"exit code {run.process.returncode}, expected {code}")
    waited = time.monotonic()
    left = run.leftover_processes(HANG_GUARD_S)
    gone_s = time.monotonic() - waited
    if left:
        found.append(f"processes still alive {HANG_GUARD_S} s after the end: {left}")
    files = run.leftover_files()
    if files:
        found.append(f"files left behind: {files}")
    if mapping == "mpi" and not any("/mpich_shm_" in path for path in run.held):
        found.append(f"no MPICH shared memory seen: is the file check blind? held: {sorted(run.held)}")
    return found, gone_s


def _output_problems(
    run: WatchedRun, mapping: str, fault: str, fault_record: dict[str, Any], victim: int | None
) -> list[str]:
    """What is wrong with what the run said on stderr and stdout."""
    found = []
    err, out = run.stderr(), run.stdout()
    lines = [line for line in err.splitlines() if line.startswith("dispel4py:")]
    expected = _expected_line(mapping, fault, fault_record, victim)
    if expected is None and lines:
        found.append(f"expected no dispel4py line, got {lines}")
    if expected is not None and (len(lines) != 1 or not re.search(expected, lines[0])):
        found.append(f"expected one dispel4py line matching {expected!r}, got {lines}")
    frames = re.findall(r'^\s*File "([^"]+)"', err, re.MULTILINE)
    if fault in FROM_OUTSIDE and "Traceback" in err:
        found.append("a traceback for a fault from outside")
    if any(frame != WORKFLOW for frame in frames):
        found.append(f"traceback frames not of the workflow: {sorted(set(frames) - {WORKFLOW})}")
    found += [f"{noise!r} on stderr" for noise in NOISE if noise in err]
    found += [f"a safety net fired: {words!r} on stderr" for words in SAFETY_NETS if words in err]
    said = [line.split("] ", 1)[-1] for line in out.splitlines()]  # hydra's: "[mpiexec@host] ..."
    if said != (HYDRA_CTRL_C if (mapping, fault) == ("mpi", "SIGINT") else []):
        found.append(f"stdout is not empty: {out!r}")
    return found


@pytest.mark.parametrize(("mapping", "fault"), list(_cells()))
def test_fault_ends_the_run_at_once_and_leaves_nothing(
    tmp_path: Path, runs: list[WatchedRun], request: Any, mapping: str, fault: str
) -> None:
    fault_dir = tmp_path / "fault"
    fault_dir.mkdir()
    env = {"FAULT_DIR": str(fault_dir), "FAULT_MODE": fault, "FAULT_HOLD": "1"}
    if fault in FROM_OUTSIDE:  # the fault comes while Work sleeps 1 s in its first item
        env.update(FAULT_MODE="hang", FAULT_ITEMS="100", FAULT_SLEEP_S="1")
    run = WatchedRun(tmp_path, _command(mapping), env)
    runs.append(run)
    fault_record: dict[str, Any] = {}
    victim = None
    if fault in FROM_OUTSIDE:
        at, victim = _start_outside_fault(run, fault_dir, fault)
    ended = run.watch_until_exit(within=HANG_GUARD_S)
    if fault in IN_WORKFLOW:
        fault_record = json.loads((fault_dir / "fault").read_text())
        at = fault_record["at"]
    run.adopt([int(path.name.removeprefix("pe-")) for path in fault_dir.glob("pe-*")], born_before=ended)
    # every check, so that a failing cell reports all that is wrong with it at once
    problems, gone_s = _ending_problems(run, mapping, fault)
    problems += _output_problems(run, mapping, fault, fault_record, victim)
    request.node.user_properties += [("fault_to_exit_s", round(ended - at, 3)), ("gone_s", round(gone_s, 3))]
    assert not problems, "\n".join(problems) + f"\n--- stderr:\n{run.stderr()}"
