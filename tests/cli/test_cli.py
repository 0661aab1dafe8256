"""The ``dispel4py`` command: exit codes, messages, stdout/stderr split, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import dispel4py

pytestmark = pytest.mark.timeout(60)

PIPELINE = "dispel4py.examples.graph_testing.pipeline_test"
PACKAGE_DIR = os.path.dirname(os.path.abspath(dispel4py.__file__))


def workflow(tmp_path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def error_lines(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if x.startswith("dispel4py: error:")]


# -- success ----------------------------------------------------------------------------------
def test_success(run_cli):
    done = run_cli("simple", PIPELINE, "-i", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Outputs: {'TestOneInOneOut5': {'output': [1, 2, 3]}}\n"


def test_results_on_stdout_diagnostics_on_stderr(run_cli):
    done = run_cli("simple", PIPELINE, "-i", "3")
    assert "Processing 3 iterations." in done.stderr.splitlines()
    assert "Processing" not in done.stdout
    assert done.stdout.startswith("Outputs: ")


def test_quiet_hides_diagnostics(run_cli):
    done = run_cli("simple", PIPELINE, "-i", "3", "-q")
    assert done.returncode == 0
    assert done.stderr == ""
    assert done.stdout == "Outputs: {'TestOneInOneOut5': {'output': [1, 2, 3]}}\n"


def test_options_before_and_after_the_workflow(run_cli):
    before = run_cli("simple", "-i", "3", PIPELINE)
    after = run_cli("simple", PIPELINE, "-i", "3")
    mixed = run_cli("-i", "3", "simple", PIPELINE, "-q")
    for done in (before, after, mixed):
        assert done.returncode == 0, done.stderr
        assert done.stdout == "Outputs: {'TestOneInOneOut5': {'output': [1, 2, 3]}}\n"


def test_python_m_dispel4py_new_processor(run_cli):
    done = run_cli("simple", PIPELINE, "-i", "2", module="dispel4py.new.processor")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Outputs: {'TestOneInOneOut5': {'output': [1, 2]}}\n"


def test_console_script(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "dispel4py")
    done = subprocess.run(
        [script, "simple", PIPELINE, "-i", "2"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Outputs: {'TestOneInOneOut5': {'output': [1, 2]}}\n"


def test_original_mapping_module_path_is_accepted(run_cli):
    done = run_cli("dispel4py.new.simple_process", PIPELINE, "-i", "2")
    assert done.returncode == 0, done.stderr
    assert "[1, 2]" in done.stdout


def test_version(run_cli):
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"dispel4py {dispel4py.__version__}"


def test_help(run_cli):
    done = run_cli("--help")
    assert done.returncode == 0
    for flag in ("-i", "-d", "-f", "-a", "--list-mappings"):
        assert flag in done.stdout


@pytest.mark.parametrize("args", [("--list-mappings",), ("mappings",)])
def test_list_mappings(run_cli, args):
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert {"simple", "multi", "mpi", "dyn_multi", "dyn_redis", "hybrid_redis"} <= set(rows)
    assert " available " in rows["simple"] + " "
    assert " available " in rows["dyn_redis"] + " "


def test_provenance_config_needs_a_folder_in_file_mode(run_cli, tmp_path):
    """The original printed its help and exited 1 without --provenance-path (docs/provenance.md)."""
    done = run_cli("simple", PIPELINE, "-i", "1", "--provenance-config", "inline")
    assert done.returncode == 2 and "needs a folder: --provenance-path" in done.stderr
    done = run_cli("simple", PIPELINE, "-i", "1", "--provenance-config", "inline", "--provenance-path", "p")
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "p").glob("bulk_*"))


def test_stats_table(run_cli):
    done = run_cli("simple", PIPELINE, "-i", "4", "--stats")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Outputs: {'TestOneInOneOut5': {'output': [1, 2, 3, 4]}}\n"
    lines = done.stderr.splitlines()
    header = next(x for x in lines if x.startswith("PE"))
    assert "instances" in header and "items in" in header and "items out" in header
    rows = {x.split()[0]: x.split() for x in lines if x.startswith(("TestProducer", "TestOneInOneOut"))}
    assert set(rows) == {"TestProducer0"} | {f"TestOneInOneOut{i}" for i in range(1, 6)}
    assert rows["TestProducer0"][1:4] == ["1", "4", "4"]
    assert rows["TestOneInOneOut5"][1:4] == ["1", "4", "4"]


# -- usage errors: exit 2 --------------------------------------------------------------------
def test_unknown_mapping(run_cli):
    done = run_cli("simpel", PIPELINE)
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "'simpel'" in line
    assert "did you mean 'simple'" in line
    assert "multi" in line and "mpi" in line
    assert done.stdout == ""


def test_a_mapping_built_since_it_was_planned_runs(run_cli):
    """dyn_redis was listed as planned ("not yet available"); a planned mapping's refusal is
    checked in tests/unit/test_registry.py."""
    done = run_cli("dyn_redis", PIPELINE, "-n", "1")
    assert done.returncode == 0, done.stderr


def test_missing_module(run_cli):
    done = run_cli("simple", "no_such_package_d4py.wf")
    assert done.returncode == 2
    assert "no_such_package_d4py.wf" in done.stderr
    assert "not found" in done.stderr


def test_missing_file(run_cli, tmp_path):
    done = run_cli("simple", str(tmp_path / "nowhere.py"))
    assert done.returncode == 2
    assert "nowhere.py" in done.stderr


def test_no_graph(run_cli, tmp_path):
    path = workflow(tmp_path, "empty", "x = 1\n")
    done = run_cli("simple", path)
    assert done.returncode == 2
    assert "no WorkflowGraph" in done.stderr
    assert "-a" in done.stderr


SEVERAL = """
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph
first = WorkflowGraph()
first.connect(t.TestProducer(), "output", t.TestOneInOneOut(), "input")
second = WorkflowGraph()
second.add(t.TestProducer())
"""


def test_several_graphs_without_attr(run_cli, tmp_path):
    path = workflow(tmp_path, "several", SEVERAL)
    done = run_cli("simple", path)
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "first" in line and "second" in line
    assert "-a" in line


def test_attr_selects_the_graph(run_cli, tmp_path):
    path = workflow(tmp_path, "several", SEVERAL)
    done = run_cli("simple", path, "-a", "first", "-i", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Outputs: {'TestOneInOneOut1': {'output': [1, 2]}}\n"


def test_invalid_json(run_cli):
    done = run_cli("simple", PIPELINE, "-d", "{bad json")
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "-d" in line
    assert "line 1 column" in line


def test_invalid_json_in_file(run_cli, tmp_path):
    data = tmp_path / "in.json"
    data.write_text('{"TestProducer0": 3,\n oops}')
    done = run_cli("simple", PIPELINE, "-f", str(data))
    assert done.returncode == 2
    assert "in.json" in done.stderr
    assert "line 2 column" in done.stderr


def test_missing_input_file(run_cli, tmp_path):
    done = run_cli("simple", PIPELINE, "-f", str(tmp_path / "absent.json"))
    assert done.returncode == 2
    assert "absent.json" in done.stderr


def test_data_key_naming_no_pe(run_cli):
    done = run_cli("simple", PIPELINE, "-d", '{"Nobody": 3}')
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "Nobody" in line
    assert "TestProducer0" in line and "TestOneInOneOut5" in line


def test_negative_iterations(run_cli):
    done = run_cli("simple", PIPELINE, "-i", "-2")
    assert done.returncode == 2
    assert "-2" in done.stderr


def test_unknown_port_in_workflow_file(run_cli, tmp_path):
    path = workflow(
        tmp_path,
        "badport",
        """
        from dispel4py.examples.graph_testing import testing_PEs as t
        from dispel4py.workflow_graph import WorkflowGraph
        graph = WorkflowGraph()
        graph.connect(t.TestProducer(), "output", t.TestOneInOneOut(), "inptu")
        """,
    )
    done = run_cli("simple", path)
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "TestOneInOneOut1" in line
    assert "'inptu'" in line
    assert "did you mean 'input'" in line


def test_error_while_importing_workflow(run_cli, tmp_path):
    path = workflow(tmp_path, "broken", 'raise RuntimeError("broken at import")\n')
    done = run_cli("simple", path)
    assert done.returncode == 2
    assert "RuntimeError: broken at import" in done.stderr
    assert "broken.py" in done.stderr


# -- workflow failure: exit 1 --------------------------------------------------------------------
FAILING = """
from dispel4py.base import IterativePE
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph


def check_value(x):
    if x == 2:
        raise ValueError(f"value {x} is not allowed")
    return x


class Validate(IterativePE):
    def _process(self, data):
        return check_value(data)


graph = WorkflowGraph()
graph.connect(t.TestProducer(), "output", Validate(), "input")
"""


def test_pe_raising_exits_1_with_one_error_line_and_user_traceback(run_cli, tmp_path):
    path = workflow(tmp_path, "failing", FAILING)
    done = run_cli("simple", path, "-i", "3")
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    (line,) = error_lines(done.stderr)
    assert line == (
        "dispel4py: error: PE Validate1 (instance 1) failed in process on input 'input' "
        "with item 2: ValueError: value 2 is not allowed"
    )
    rest = "\n".join(lines[lines.index(line) + 1 :])
    assert "Traceback (most recent call last):" in rest
    assert "failing.py" in rest
    assert "in _process" in rest and "in check_value" in rest
    *_, last_error, hint = rest.rstrip().splitlines()  # then the saved call (tests/cli/test_replay.py)
    assert last_error == "ValueError: value 2 is not allowed"
    assert hint.startswith("the failing call is saved: dispel4py replay ")
    assert "executor.py" not in done.stderr
    assert PACKAGE_DIR not in done.stderr


def test_pe_raising_in_postprocess_exits_1(run_cli, tmp_path):
    path = workflow(
        tmp_path,
        "postfail",
        """
        from dispel4py.base import ConsumerPE
        from dispel4py.examples.graph_testing import testing_PEs as t
        from dispel4py.workflow_graph import WorkflowGraph

        class Flush(ConsumerPE):
            def _postprocess(self):
                raise OSError("disk full")

        graph = WorkflowGraph()
        graph.connect(t.TestProducer(), "output", Flush(), "input")
        """,
    )
    done = run_cli("simple", path)
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert "Flush1" in line and "postprocess" in line and "OSError: disk full" in line
    assert "executor.py" not in done.stderr


# -- Ctrl-C ------------------------------------------------------------------------------------
SLEEPY = """
import pathlib, time
from dispel4py.base import ConsumerPE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

MARKER = pathlib.Path({marker!r})


class Slow(ProducerPE):
    def _process(self, inputs):
        MARKER.touch()
        time.sleep(0.2)
        return 1


class Sink(ConsumerPE):
    def _process(self, data):
        pass


graph = WorkflowGraph()
graph.connect(Slow(), "output", Sink(), "input")
"""


def test_ctrl_c_exits_130(tmp_path):
    marker = tmp_path / "started"
    path = workflow(tmp_path, "sleepy", SLEEPY.format(marker=str(marker)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispel4py", "simple", path, "-i", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the workflow never started"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
