"""Watching a run from the command line: the live table (under a pseudo-terminal), -v/-vv,
JSON files, the bottleneck hint, log format and file, --plan, and every bad-input path."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(90)

PIPELINE = "dispel4py.examples.graph_testing.pipeline_test"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

SLOW = """
import time
from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Numbers(ProducerPE):
    def _process(self, inputs):
        for n in range(inputs.get("count", 20)):
            self.write("output", n)


class Slow(IterativePE):
    def _process(self, n):
        time.sleep(0.05)
        return n


class Cheap(IterativePE):
    def _process(self, n):
        return n + 1


class Sink(ConsumerPE):
    def __init__(self):
        super().__init__()
        self._add_output("total")
        self.total = 0

    def _process(self, n):
        self.total += n

    def _postprocess(self):
        self.log(f"total {self.total}")
        self.write("total", self.total)


graph = WorkflowGraph()
numbers, slow, cheap, sink = Numbers(), Slow(), Cheap(), Sink()
graph.connect(numbers, "output", slow, "input")
graph.connect(slow, "output", cheap, "input")
graph.connect(cheap, "output", sink, "input")
"""

ODD_ITEMS = """
from dispel4py.base import ProducerPE
from dispel4py.workflow_graph import WorkflowGraph


class Odd(ProducerPE):
    def _process(self, inputs):
        for item in ({1, 2}, float("nan"), b"x", {"k": (1, 2)}, 3):
            self.write("output", item)


graph = WorkflowGraph()
graph.add(Odd())
"""


@pytest.fixture
def slow(tmp_path) -> str:
    path = tmp_path / "slow.py"
    path.write_text(textwrap.dedent(SLOW))
    return str(path)


def _count(n: int) -> str:
    return json.dumps({"Numbers": [{"count": n}]})


def _run_on_terminal(args: list[str], cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    """``python -m dispel4py *args`` with stderr on a pseudo-terminal: (code, stdout, terminal)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "dispel4py", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=cwd,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stdout, _ = process.communicate(timeout=timeout)
    finally:
        process.kill()
        reader.join(5)
        os.close(master)
    return process.returncode, stdout.decode(), b"".join(chunks).decode(errors="replace")


# -- the live table ----------------------------------------------------------------------------
def test_live_table_on_a_terminal(slow, tmp_path) -> None:
    code, stdout, terminal = _run_on_terminal(["multi", slow, "-n", "3", "-d", _count(20)], tmp_path)
    assert code == 0, terminal
    assert "Outputs: {'Sink3': {'total': [" in stdout  # results stay on stdout
    text = ANSI.sub("", terminal)
    assert "dispel4py multi · 3 workers · done in" in text
    for column in ("instances", "items in", "items out", "rate/s", "queued (items)", "busy"):
        assert column in text
    final = text[text.rindex("done in") :]
    rows = {line.split()[0]: line.split() for line in final.splitlines()[2:6]}
    assert rows["Numbers0"][1:4] == ["1", "1", "20"]
    assert rows["Slow1"][2:4] == ["20", "20"]
    assert rows["Sink3"][2] == "20"
    assert "\x1b[" in terminal  # drawn with terminal codes


def test_live_table_prints_log_lines_above_it(slow, tmp_path) -> None:
    code, _, terminal = _run_on_terminal(["simple", slow, "-v", "-d", _count(5)], tmp_path)
    assert code == 0, terminal
    text = ANSI.sub("", terminal)
    assert "Sink3 (rank 3): Processed 5 iterations." in text
    assert "done in" in text


@pytest.mark.parametrize("flags", [["-q"], ["--no-progress"]])
def test_no_table_with_q_or_no_progress(slow, tmp_path, flags) -> None:
    code, stdout, terminal = _run_on_terminal(["simple", slow, "-d", _count(3), *flags], tmp_path)
    assert code == 0, terminal
    assert "dispel4py simple" not in terminal
    assert "\x1b[" not in terminal
    assert "Outputs: " in stdout


def test_no_table_when_stderr_is_not_a_terminal(run_cli, slow) -> None:
    done = run_cli("multi", slow, "-n", "2", "-d", _count(3))
    assert done.returncode == 0, done.stderr
    assert "instances" not in done.stderr
    assert "\x1b" not in done.stderr


def test_progress_forces_the_table_without_a_terminal(run_cli, slow) -> None:
    done = run_cli("dyn_multi", slow, "-n", "2", "-d", _count(6), "--progress")
    assert done.returncode == 0, done.stderr
    text = ANSI.sub("", done.stderr)
    assert "dispel4py dyn_multi · 2 workers · done in" in text
    assert "queued (tasks)" in text


# -- -v and -vv --------------------------------------------------------------------------------
def test_v_logs_progress_lines_and_instance_summaries(run_cli, slow) -> None:
    done = run_cli("multi", slow, "-n", "2", "-d", _count(20), "-v", "--progress-interval", "0.2")
    assert done.returncode == 0, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.startswith("progress ")]
    assert lines, done.stderr
    assert all("Numbers0" in x and "Slow1" in x and "Sink3" in x for x in lines)
    assert re.search(r"Slow1 \(rank \d+\): Processed \d+ iterations?\.", done.stderr)


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi"])
def test_the_first_progress_line_shows_rate_and_busy(run_cli, slow, mapping) -> None:
    """Slow1 sleeps all the time it runs (100 items, 50 ms each: seconds of work), so the
    first line, 1.5 s in, has counted items into it; it shows a rate and a busy share above
    zero (every first line said 0.0/s and 0%: its window had no length)."""
    done = run_cli(mapping, slow, "-n", "3", "-d", _count(100), "-v", "--progress-interval", "1.5")
    assert done.returncode == 0, done.stderr
    first = next(line for line in done.stderr.splitlines() if line.startswith("progress "))
    found = re.search(r"Slow1 (\d+) in \d+ out ([\d.]+)/s.* busy (\d+)%", first.split(";")[1])
    assert found, done.stderr
    if int(found.group(1)) == 0:  # the workers took the whole 1.5 s to start: nothing to check
        pytest.skip(f"Slow1 had no item yet on the first line: {first}")
    assert float(found.group(2)) > 0 and int(found.group(3)) > 0, first


def test_progress_lines_need_v(run_cli, slow) -> None:
    done = run_cli("multi", slow, "-n", "2", "-d", _count(10), "--progress-interval", "0.1")
    assert done.returncode == 0, done.stderr
    assert "progress " not in done.stderr


def test_vv_shows_engine_debug_lines(run_cli, slow) -> None:
    done = run_cli("multi", slow, "-n", "2", "-d", _count(5), "-vv")
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "placement: 2 worker(s), partitioned: Numbers0 -> 0@w0; Slow1 -> " in err
    assert re.search(r"worker 0: batch of \d+ items? to Slow1 \(instance \d\) input 'input' on worker 1", err)
    assert re.search(r"worker \d: end of stream for Sink3 \(instance \d\)", err)
    assert re.search(r"worker \d: end-of-stream marker for \w+ \(instance \d\), \d+ to come", err)
    assert "Processed" in err


def test_vv_on_a_dynamic_mapping_logs_tasks(run_cli, slow) -> None:
    done = run_cli("dyn_multi", slow, "-n", "2", "-d", _count(3), "-vv")
    assert done.returncode == 0, done.stderr
    assert re.search(r"worker \d: task of Slow1 \(instance 1\): \d+ items? in [0-9.]+ s", done.stderr)
    assert "end of stream: Sink3, postprocess on workers" in done.stderr


def test_v_is_not_vv(run_cli, slow) -> None:
    done = run_cli("multi", slow, "-n", "2", "-d", _count(3), "-v")
    assert "batch of" not in done.stderr
    assert "placement:" not in done.stderr


# -- JSON -------------------------------------------------------------------------------------------
def test_output_json_file(run_cli, tmp_path) -> None:
    done = run_cli("simple", PIPELINE, "-i", "3", "--output-json", "out.json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Outputs:")
    assert json.loads((tmp_path / "out.json").read_text()) == {"TestOneInOneOut5": {"output": [1, 2, 3]}}


def test_o_dash_writes_json_to_stdout_instead_of_the_outputs_line(run_cli) -> None:
    done = run_cli("multi", PIPELINE, "-i", "3", "-n", "2", "-o", "-")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert sorted(data["TestOneInOneOut5"]["output"]) == [1, 2, 3]


def test_output_json_falls_back_to_repr(run_cli, tmp_path) -> None:
    (tmp_path / "odd.py").write_text(textwrap.dedent(ODD_ITEMS))
    done = run_cli("simple", "odd.py", "-o", "-")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"Odd0": {"output": ["{1, 2}", "nan", "b'x'", {"k": [1, 2]}, 3]}}


def test_stats_json_file(run_cli, tmp_path, slow) -> None:
    done = run_cli("multi", slow, "-n", "3", "-d", _count(6), "--stats-json", "stats.json")
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "stats.json").read_text())
    assert doc["schema"] == "dispel4py.stats/1"
    assert (doc["mapping"], doc["workers"]) == ("multi", 3)
    assert doc["elapsed_s"] > 0
    assert doc["pes"]["Slow1"]["items_in"] == 6
    assert doc["pes"]["Slow1"]["busy_s"] >= 0.25
    assert sum(i["items_in"] for i in doc["instances"] if i["pe"] == "Sink3") == 6
    assert doc["layout"]["Numbers0"] == [{"instance": 0, "worker": 0}]
    assert len(doc["layout"]["Slow1"]) == doc["pes"]["Slow1"]["instances"]
    assert "bottleneck" in doc


# -- the bottleneck hint ------------------------------------------------------------------------
def test_bottleneck_hint_with_stats(run_cli, tmp_path, slow) -> None:
    # 4 PEs on 8 workers with the original's layout: one instance per worker, the slow stage gets 2
    done = run_cli(
        "multi", slow, "-n", "8", "-d", _count(40), "--stats", "--stats-json", "s.json", "--original-layout"
    )
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("bottleneck:")]
    assert line.startswith("bottleneck: Slow1 was busy ")
    assert "on 2 instances of 7 workers" in line
    assert "numprocesses" in line and "dyn_multi" in line
    assert json.loads((tmp_path / "s.json").read_text())["bottleneck"]["pe"] == "Slow1"


def test_no_bottleneck_line_without_stats_or_without_a_bottleneck(run_cli, slow) -> None:
    quiet = run_cli("multi", slow, "-n", "8", "-d", _count(20))
    assert "bottleneck" not in quiet.stderr
    even = run_cli("simple", slow, "-d", _count(5), "--stats")
    assert "bottleneck" not in even.stderr


# -- logging ------------------------------------------------------------------------------------
def test_log_format_time_adds_timestamps(run_cli) -> None:
    done = run_cli("simple", PIPELINE, "-i", "2", "--log-format", "time")
    assert done.returncode == 0, done.stderr
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} Processing 2 iterations\.", done.stderr)


def test_log_format_string(run_cli) -> None:
    done = run_cli("simple", PIPELINE, "-i", "2", "-v", "--log-format", "[%(levelname)s] %(message)s")
    assert "[WARNING] Processing 2 iterations." in done.stderr.splitlines()
    assert any(x.startswith("[INFO] TestOneInOneOut5 (rank 5): Processed") for x in done.stderr.splitlines())


def test_log_file_gets_the_lines_with_timestamps(run_cli, tmp_path) -> None:
    done = run_cli("multi", PIPELINE, "-i", "2", "-n", "2", "-v", "--log-file", "run.log")
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "run.log").read_text().splitlines()
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING dispel4py.cli: Processing 2 iterations\.", log[0]
    )
    assert any("INFO dispel4py.engine: TestOneInOneOut5 (rank" in x for x in log)
    assert "Processing 2 iterations." in done.stderr  # stderr still has them


def test_log_file_with_q_keeps_stderr_quiet(run_cli, tmp_path) -> None:
    done = run_cli("simple", PIPELINE, "-i", "2", "-q", "-v", "--log-file", "run.log")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    text = (tmp_path / "run.log").read_text()
    assert "Processing 2 iterations." in text and "Processed 2 iterations." in text


# -- self.log from the Python API ---------------------------------------------------------------
API_SCRIPT = """
import logging, sys
import dispel4py
from slow import graph
if sys.argv[1] == "configured":
    logging.basicConfig(stream=sys.stderr, format="ROOT %(message)s")
options = {"num": 2} if sys.argv[2] != "simple" else {}
result = dispel4py.run(graph, {"Numbers": [{"count": 3}]}, sys.argv[2], **options)
print("result", result["Sink3"])
"""


@pytest.mark.parametrize("mapping", ["simple", "multi"])
def test_self_log_shows_from_the_python_api(tmp_path, slow, mapping) -> None:
    (tmp_path / "api.py").write_text(textwrap.dedent(API_SCRIPT))
    done = subprocess.run(
        [sys.executable, "api.py", "plain", mapping], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^Sink3 \(rank \d+\): total \d+$", done.stdout, re.M), done.stdout
    assert "result {'total': [" in done.stdout


def test_self_log_goes_to_the_application_s_handlers_once(tmp_path, slow) -> None:
    (tmp_path / "api.py").write_text(textwrap.dedent(API_SCRIPT))
    done = subprocess.run(
        [sys.executable, "api.py", "configured", "multi"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "total" not in done.stdout.replace("result {'total'", "")
    assert len(re.findall(r"^ROOT Sink3 \(rank \d+\): total \d+$", done.stderr, re.M)) == 2  # two instances


# -- --plan -------------------------------------------------------------------------------------
def test_plan_prints_the_layout_and_runs_nothing(run_cli, tmp_path) -> None:
    (tmp_path / "loud.py").write_text(
        textwrap.dedent(
            """
            from dispel4py.base import ProducerPE, IterativePE
            from dispel4py.workflow_graph import WorkflowGraph

            class Loud(ProducerPE):
                def _process(self, inputs):
                    open("ran", "w").close()
                    return 1

            graph = WorkflowGraph()
            graph.connect(Loud(), "output", IterativePE(), "input")
            """
        )
    )
    done = run_cli("multi", "loud.py", "-n", "3", "--plan", "--original-layout")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "ran").exists()
    lines = done.stdout.splitlines()
    assert lines == [
        "multi: 3 workers, one instance per worker",
        "PE            instances  workers",
        "Loud0                 1  0",
        "IterativePE1          2  1, 2",
        "worker 0: Loud0[0]",
        "worker 1: IterativePE1[1]",
        "worker 2: IterativePE1[2]",
        "Processes: {'Loud0': range(0, 1), 'IterativePE1': range(1, 3)}",
    ]
    assert "Processing" not in done.stderr


def test_plan_subcommand_is_the_same(run_cli) -> None:
    flag = run_cli("multi", PIPELINE, "-n", "4", "--plan")
    command = run_cli("plan", "multi", PIPELINE, "-n", "4")
    assert command.returncode == 0, command.stderr
    assert command.stdout == flag.stdout


def test_plan_of_mpi_needs_no_mpiexec(run_cli) -> None:
    pytest.importorskip("mpi4py")
    done = run_cli("plan", "mpi", PIPELINE, "-n", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mpi: 3 ranks, partitioned\n")
    assert "rank 2: TestOneInOneOut1[" in done.stdout


def test_plan_of_a_dynamic_mapping(run_cli) -> None:
    done = run_cli("dyn_multi", PIPELINE, "-n", "3", "--plan")
    assert done.returncode == 0, done.stderr
    assert "TestOneInOneOut1          1  any (shared)" in done.stdout
    assert "worker 1: (shared work only)" in done.stdout


def test_plan_reports_graph_errors(run_cli) -> None:
    done = run_cli("plan", "multi", PIPELINE, "-d", '{"Nope": 1}')
    assert done.returncode == 2
    assert "Nope" in done.stderr


# -- bad input: exit 2 naming the flag or file ------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--output-json", "missing/out.json"],
            "--output-json missing/out.json: the folder missing does not exist",
        ),
        (["--stats-json", "."], "--stats-json .: is a folder; give a file name"),
        (["--stats-json", "-"], "--stats-json needs a file name"),
        (["--log-file", "missing/run.log"], "--log-file missing/run.log: the folder missing does not exist"),
        (
            ["-o", "same.json", "--stats-json", "same.json"],
            "--output-json and --stats-json name the same file",
        ),
        (["--log-format", "nonsense"], "--log-format 'nonsense': give plain, time, full or a logging format"),
        (["--log-format", "%(nope)s"], "--log-format '%(nope)s' is not a valid logging format"),
        (["--progress-interval", "0"], "--progress-interval must be a number of seconds above 0"),
    ],
)
def test_bad_observation_flags_are_usage_errors(run_cli, tmp_path, flags, message) -> None:
    done = run_cli("simple", PIPELINE, "-i", "2", *flags)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == f"dispel4py: error: {message}" or message in done.stderr
    assert done.stdout == ""  # nothing ran
    assert "Processing" not in done.stderr
    assert not (tmp_path / "same.json").exists()


def test_unwritable_file_is_a_usage_error(run_cli, tmp_path) -> None:
    if os.geteuid() == 0:
        target = "/proc/version"  # not writable even by root
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target = "ro/out.json"
    done = run_cli("simple", PIPELINE, "-i", "2", "--output-json", target)
    assert done.returncode == 2, done.stderr
    assert f"dispel4py: error: --output-json {target}: cannot write there" in done.stderr


# -- cost ------------------------------------------------------------------------------------------
def test_runs_without_a_terminal_never_import_rich(tmp_path, slow) -> None:
    code = (
        "import sys\n"
        "from dispel4py.cli import main\n"
        f"code = main(['multi', {slow!r}, '-n', '2', '-v', '--progress-interval', '0.1', '-o', 'o.json'])\n"
        "assert 'rich' not in sys.modules, sorted(m for m in sys.modules if m.startswith('rich'))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_log_format_leaves_pe_lines_on_stdout_alone(run_cli, slow) -> None:
    done = run_cli("simple", slow, "-d", _count(3), "-v", "--log-format", "time")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^Sink3 \(rank 3\): total 6$", done.stdout, re.M), done.stdout
    assert done.stderr and all(re.match(r"\d{4}-\d\d-\d\d ", x) for x in done.stderr.splitlines())
