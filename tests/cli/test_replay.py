"""Replaying a failure: a failed PE call is saved where it ran and ``dispel4py replay FILE``
runs it again in-process (``--pdb``: the debugger at the raise)."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

import dispel4py
from dispel4py.engine import replay
from dispel4py.errors import WorkflowFailed

pytestmark = pytest.mark.timeout(60)

BOOM = """
    from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
    from dispel4py.workflow_graph import WorkflowGraph


    class Numbers(ProducerPE):
        def _process(self, inputs):
            for i in range(inputs.get("count", 10)):
                self.write("output", i)


    class Boom(IterativePE):
        def __init__(self):
            super().__init__()
            self.seen = []

        def _process(self, x):
            self.seen.append(x)
            self.write("output", x * 10)
            if x == 7:
                total = sum(self.seen)
                raise ValueError(f"bad item {x} after {total}")
            return None


    class Sink(ConsumerPE):
        def _process(self, x):
            pass


    graph = WorkflowGraph()
    boom = Boom()
    graph.connect(Numbers(), "output", boom, "input")
    graph.connect(boom, "output", Sink(), "input")
"""
HINT = re.compile(r"^the failing call is saved: dispel4py replay (\S+) \[--pdb\] runs it again$")


def workflow(tmp_path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def saved_path(stderr: str, cwd) -> str:
    (match,) = [m for m in map(HINT.match, stderr.splitlines()) if m]
    return os.path.join(cwd, match.group(1))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dispel4py: error:")]


def fail_and_replay(
    run_cli, tmp_path, *mapping: str, replay_args=()
) -> tuple[subprocess.CompletedProcess, str]:
    path = workflow(tmp_path, "boom", BOOM)
    done = run_cli(*mapping, path)
    assert done.returncode == 1, done.stderr
    return done, saved_path(done.stderr, tmp_path)


# -- saving ------------------------------------------------------------------------------------------
def test_failure_names_a_private_replay_file(run_cli, tmp_path):
    done, path = fail_and_replay(run_cli, tmp_path, "simple")
    assert done.stderr.splitlines()[-1] == (
        f"the failing call is saved: dispel4py replay {os.path.relpath(path, tmp_path)} [--pdb] runs it again"
    )
    assert len([line for line in done.stderr.splitlines() if line.startswith("dispel4py:")]) == 1
    assert os.path.dirname(path) == str(tmp_path / ".dispel4py")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / ".dispel4py").st_mode) == 0o700
    assert re.fullmatch(r"replay-\d{8}-\d{6}-Boom1-1-\d+\.pkl", os.path.basename(path))


def test_replay_runs_the_call_again(run_cli, tmp_path):
    _, path = fail_and_replay(run_cli, tmp_path, "simple")
    again = run_cli("replay", path)
    assert again.returncode == 1
    assert again.stdout == "output: 70\n"  # what the call wrote before raising
    assert "replaying PE Boom1 (instance 1), process on input 'input' with item 7" in again.stderr
    # the state is the PE's when it raised: 7 was already appended once
    assert error_lines(again.stderr) == [
        "dispel4py: error: Boom1 failed again: ValueError: bad item 7 after 35"
    ]
    assert 'boom.py", line 22, in _process' in again.stderr
    assert "cli_replay" not in again.stderr  # only the user's frames
    assert "was not saved" not in again.stderr


def test_attributes_that_do_not_pickle_are_left_out(run_cli, tmp_path):
    source = BOOM.replace(
        "            self.seen = []\n",
        "            self.seen = []\n            self.pending = (i for i in range(3))  # does not pickle\n",
    )
    path = workflow(tmp_path, "boom", source)
    done = run_cli("simple", path)
    again = run_cli("replay", saved_path(done.stderr, tmp_path))
    assert again.returncode == 1
    assert (
        "self.pending of Boom1 was not saved (TypeError: cannot pickle 'generator' object): "
        "the replay runs without it"
    ) in again.stderr.splitlines()
    assert error_lines(again.stderr) == [
        "dispel4py: error: Boom1 failed again: ValueError: bad item 7 after 35"
    ]


def test_replay_with_pdb_stops_at_the_raise(tmp_path, run_cli):
    _, path = fail_and_replay(run_cli, tmp_path, "simple")
    done = subprocess.run(
        [sys.executable, "-m", "dispel4py", "replay", path, "--pdb"],
        input="p x\np self.seen[-3:]\nq\n",
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.endswith("boom.py(22)_process()") for line in lines), done.stdout
    assert '-> raise ValueError(f"bad item {x} after {total}")' in lines
    assert "(Pdb) 7" in lines
    assert "(Pdb) [6, 7, 7]" in lines


@pytest.mark.parametrize(
    "mapping",
    [
        ("multi", "-n", "3"),
        ("multi", "-n", "3", "--start-method", "spawn"),
        ("zmq_multi", "-n", "3"),
        ("dyn_multi", "-n", "2"),
    ],
    ids=["multi", "multi-spawn", "zmq_multi", "dyn_multi"],
)
def test_saved_where_the_pe_ran_on_worker_processes(run_cli, tmp_path, mapping):
    _, path = fail_and_replay(run_cli, tmp_path, *mapping)
    saved = replay.read_replay_file(path)
    assert saved.pe_id == "Boom1" and saved.port == "input"
    assert saved.where.startswith("worker ")  # written by the worker, not the driver
    assert f"-{os.getpid()}.pkl" not in path
    again = run_cli("replay", path, "-q")
    assert again.returncode == 1
    assert error_lines(again.stderr)[0].startswith(
        "dispel4py: error: Boom1 failed again: ValueError: bad item 7"
    )


def _mpiexec() -> str:
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = local if os.path.exists(local) else shutil.which("mpiexec")
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mpiexec not found: pip install 'dispel4py[mpi]'")
        pytest.skip("mpiexec not found")
    return found


@pytest.mark.mpi
def test_saved_by_the_mpi_rank_that_failed(run_cli, tmp_path):
    path = workflow(tmp_path, "boom", BOOM)
    done = subprocess.run(
        [_mpiexec(), "-n", "3", sys.executable, "-m", "dispel4py", "mpi", path],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    saved = replay.read_replay_file(saved_path(done.stderr, tmp_path))
    assert saved.where.startswith("rank ")  # the rank hosting Boom1 wrote it
    again = run_cli("replay", saved_path(done.stderr, tmp_path), "-q")
    assert again.returncode == 1 and "bad item 7" in again.stderr


@pytest.mark.parametrize(
    ("phase", "body", "call"),
    [
        ("preprocess", "def _preprocess(self):\n        raise KeyError('config')", "preprocess"),
        ("postprocess", "def _postprocess(self):\n        raise KeyError('flush')", "postprocess"),
        (
            "source",
            "def _process(self, inputs):\n        raise KeyError(inputs['count'])",
            "process of a source",
        ),
    ],
)
def test_every_phase_replays(run_cli, tmp_path, phase, body, call):
    source = (
        "from dispel4py.base import ProducerPE\n"
        "from dispel4py.workflow_graph import WorkflowGraph\n\n\n"
        f"class Src(ProducerPE):\n    {body}\n\n\n"
        "graph = WorkflowGraph()\n"
        "graph.add(Src())\n"
    )
    path = workflow(tmp_path, "phases", source)
    done = run_cli("simple", path, "-d", '{"Src": [{"count": 3}]}')
    assert done.returncode == 1, done.stderr
    again = run_cli("replay", saved_path(done.stderr, tmp_path))
    assert again.returncode == 1
    assert f"replaying PE Src0 (instance 0), {call}" in again.stderr
    assert error_lines(again.stderr)[0].startswith("dispel4py: error: Src0 failed again: KeyError: ")


def test_a_call_that_succeeds_on_replay(run_cli, tmp_path):
    source = """
        import os
        from dispel4py.base import IterativePE, ProducerPE
        from dispel4py.workflow_graph import WorkflowGraph


        class Once(IterativePE):
            def _process(self, x):
                if not os.path.exists("failed-once"):
                    open("failed-once", "w").close()
                    raise RuntimeError("the disk was full")
                return x + 1


        class One(ProducerPE):
            def _process(self, inputs):
                return 41


        graph = WorkflowGraph()
        graph.connect(One(), "output", Once(), "input")
    """
    path = workflow(tmp_path, "flaky", source)
    done = run_cli("simple", path)
    assert done.returncode == 1
    again = run_cli("replay", saved_path(done.stderr, tmp_path))
    assert again.returncode == 0
    assert again.stdout == "output: 42\n"
    assert "Once1 did not fail this time" in again.stderr


def test_pe_logs_of_the_replay_go_to_stdout(run_cli, tmp_path):
    source = BOOM.replace(
        "                total = sum(self.seen)\n",
        '                total = sum(self.seen)\n                self.log("about to fail")\n',
    )
    path = workflow(tmp_path, "boom", source)
    done = run_cli("simple", path)
    again = run_cli("replay", saved_path(done.stderr, tmp_path))
    assert again.stdout.splitlines() == ["output: 70", "Boom1 (rank 1): about to fail"]


# -- options of a run -------------------------------------------------------------------------------
def test_no_replay_file(run_cli, tmp_path):
    path = workflow(tmp_path, "boom", BOOM)
    done = run_cli("simple", path, "--no-replay-file")
    assert done.returncode == 1
    assert "failing call" not in done.stderr and "dispel4py replay" not in done.stderr
    assert not (tmp_path / ".dispel4py").exists()


def test_replay_dir(run_cli, tmp_path):
    path = workflow(tmp_path, "boom", BOOM)
    done = run_cli("multi", path, "-n", "2", "--replay-dir", "saved/calls")
    assert done.returncode == 1
    saved = saved_path(done.stderr, tmp_path)
    assert os.path.dirname(saved) == str(tmp_path / "saved" / "calls")


@pytest.mark.parametrize("value", ["from-env", ""])
def test_replay_dir_from_the_environment(tmp_path, value):
    path = workflow(tmp_path, "boom", BOOM)
    done = subprocess.run(
        [sys.executable, "-m", "dispel4py", "simple", path],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={**os.environ, replay.ENV: value},
        check=False,
    )
    assert done.returncode == 1
    if value:
        assert os.path.dirname(saved_path(done.stderr, tmp_path)) == str(tmp_path / value)
    else:  # set to '': none, as --no-replay-file
        assert "failing call" not in done.stderr
    assert not (tmp_path / ".dispel4py").exists()


def test_successful_run_writes_nothing(run_cli, tmp_path):
    done = run_cli("simple", "dispel4py.examples.graph_testing.pipeline_test")
    assert done.returncode == 0
    assert not (tmp_path / ".dispel4py").exists()


def test_replay_dir_that_is_a_file(run_cli, tmp_path):
    (tmp_path / "taken").write_text("")
    done = run_cli("simple", "dispel4py.examples.graph_testing.pipeline_test", "--replay-dir", "taken")
    assert done.returncode == 2
    assert error_lines(done.stderr) == ["dispel4py: error: --replay-dir taken: it is a file, not a folder"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_replay_dir_not_writable(run_cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    done = run_cli("simple", "dispel4py.examples.graph_testing.pipeline_test", "--replay-dir", "locked/x")
    assert done.returncode == 2
    assert error_lines(done.stderr)[0].startswith(
        "dispel4py: error: --replay-dir locked/x: cannot write there"
    )


def test_no_replay_file_and_replay_dir_contradict(run_cli):
    done = run_cli(
        "simple", "dispel4py.examples.graph_testing.pipeline_test", "--no-replay-file", "--replay-dir", "d"
    )
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "dispel4py: error: --no-replay-file and --replay-dir contradict each other; give one of them"
    ]


# -- from Python ------------------------------------------------------------------------------------------
def _boom_graph(tmp_path):
    sys.path.insert(0, str(tmp_path))
    workflow(tmp_path, "boom_lib", BOOM)
    try:
        import boom_lib
    finally:
        sys.path.remove(str(tmp_path))
    return boom_lib.graph


def test_python_api_saves_only_when_asked(tmp_path, monkeypatch, fresh_ids):
    graph = _boom_graph(tmp_path)
    monkeypatch.delenv(replay.ENV, raising=False)
    with pytest.raises(WorkflowFailed) as info:
        dispel4py.run(graph)
    assert info.value.replay_file == "" and info.value.replay_error == ""
    monkeypatch.setenv(replay.ENV, str(tmp_path / "calls"))
    with pytest.raises(WorkflowFailed) as info:
        dispel4py.run(graph, mapping="multi", num=2)
    assert os.path.dirname(info.value.replay_file) == str(tmp_path / "calls")
    assert replay.read_replay_file(info.value.replay_file).pe_id == info.value.pe_id


def test_save_errors_become_a_note(tmp_path, monkeypatch, fresh_ids):
    graph = _boom_graph(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv(replay.ENV, str(blocker / "calls"))
    monkeypatch.setattr("tempfile.tempdir", str(blocker / "tmp"))  # the fallback is blocked too
    with pytest.raises(WorkflowFailed) as info:
        dispel4py.run(graph)
    assert info.value.replay_file == ""
    assert info.value.replay_error.startswith("NotADirectoryError")
    assert replay.replay_hint(info.value).startswith(
        "the failing call could not be saved for dispel4py replay (NotADirectoryError"
    )


# -- bad replay files: a clear message, exit 2 -------------------------------------------------------------
def test_replay_without_a_file(run_cli):
    done = run_cli("replay")
    assert done.returncode == 2
    assert "the following arguments are required: file" in done.stderr


def test_replay_unknown_option_suggests(run_cli, tmp_path):
    done = run_cli("replay", "x.pkl", "--pbd")
    assert done.returncode == 2
    assert "unknown option '--pbd' (did you mean '--pdb'?)" in done.stderr


def test_replay_missing_file_suggests_a_near_one(run_cli, tmp_path):
    _, path = fail_and_replay(run_cli, tmp_path, "simple")
    near = path[:-5] + ("8" if path[-5] == "9" else "9") + ".pkl"  # one digit off, never the file
    done = run_cli("replay", near)
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"dispel4py: error: replay file '{near}' does not exist (did you mean {path}?)"
    ]


def test_replay_not_a_replay_file(run_cli, tmp_path):
    other = tmp_path / "data.pkl"
    other.write_bytes(pickle.dumps({"a": 1}))
    done = run_cli("replay", str(other))
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"dispel4py: error: '{other}' is not a dispel4py replay file (they are written when a PE "
        "fails and named in the error message)"
    ]


def test_replay_damaged_file(run_cli, tmp_path):
    damaged = tmp_path / "damaged.pkl"
    damaged.write_bytes(replay.MAGIC + b"\x80\x05garbage")
    done = run_cli("replay", str(damaged))
    assert done.returncode == 2
    assert error_lines(done.stderr)[0].startswith(f"dispel4py: error: replay file '{damaged}' is damaged (")


def test_replay_a_folder(run_cli, tmp_path):
    done = run_cli("replay", str(tmp_path))
    assert done.returncode == 2
    assert error_lines(done.stderr) == [f"dispel4py: error: '{tmp_path}' is a folder, not a replay file"]


def test_replay_when_the_workflow_file_is_gone(run_cli, tmp_path):
    _, path = fail_and_replay(run_cli, tmp_path, "simple")
    os.remove(tmp_path / "boom.py")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_cli("replay", path, cwd=elsewhere)
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert line == (
        f"dispel4py: error: module 'boom', which defines PE Boom1, cannot be imported and its file "
        f"{tmp_path / 'boom.py'} is gone; replay where the workflow's files are"
    )


def _saved(**changes) -> replay.Saved:
    fields = dict(
        pe_id="Boom1",
        instance=1,
        phase="process",
        port="input",
        source_call=False,
        item_repr="<generator object>",
        error="ValueError: x",
        user_traceback="",
        where="worker 1",
        created="now",
        pe_class="boom.Boom",
        modules=[],
        sys_path=[],
    )
    fields.update(changes)
    return replay.Saved(**fields)


def test_replay_when_the_pe_could_not_be_saved(run_cli, tmp_path):
    path = tmp_path / "nope.pkl"
    path.write_bytes(replay.MAGIC + pickle.dumps(_saved(pe_error="its class cannot be saved (TypeError: x)")))
    done = run_cli("replay", str(path))
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"dispel4py: error: replay file '{path}' holds no PE: Boom1 could not be saved when it failed "
        "(its class cannot be saved (TypeError: x)); nothing to replay"
    ]


def test_replay_when_the_item_could_not_be_saved(run_cli, tmp_path):
    source = """
        from dispel4py.base import IterativePE, ProducerPE
        from dispel4py.workflow_graph import WorkflowGraph


        class Gen(ProducerPE):
            def _process(self, inputs):
                return (i for i in range(3))


        class Eat(IterativePE):
            def _process(self, gen):
                raise ValueError("cannot eat a generator")


        graph = WorkflowGraph()
        graph.connect(Gen(), "output", Eat(), "input")
    """
    path = workflow(tmp_path, "gen", source)
    done = run_cli("simple", path)
    assert done.returncode == 1
    again = run_cli("replay", saved_path(done.stderr, tmp_path))
    assert again.returncode == 2
    (line,) = error_lines(again.stderr)
    assert line.startswith("dispel4py: error: replay file '")
    assert "': the item <generator object Gen._proce" in line
    assert (
        "of PE Eat1 could not be saved (TypeError: cannot pickle 'generator' object); nothing to replay"
        in line
    )
