"""``dispel4py timed_simple`` / ``timed_multi``: the original's flags, its files in
``./timings``, its messages on stderr, results unchanged on stdout, and exit code 2 with
one line for a file or folder that cannot be written."""

from __future__ import annotations

import ast
import csv
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(90)

GT = "dispel4py.examples.graph_testing."


def cli(tmp_path, *args: str, graphviz: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env.pop("PYTHONHASHSEED", None)
    if not graphviz:
        env["PATH"] = os.path.dirname(sys.executable)  # no Graphviz on this PATH
    return subprocess.run(
        [sys.executable, "-m", "dispel4py", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )


def outputs(stdout: str) -> dict:
    line = next(x for x in stdout.splitlines() if x.startswith("Outputs: "))
    return ast.literal_eval(line[len("Outputs: ") :])


def multiset(result: dict) -> dict:
    return {
        pe: {out: sorted(map(repr, items)) for out, items in ports.items()} for pe, ports in result.items()
    }


@pytest.mark.parametrize(
    ("mapping", "extra"), [("timed_simple", []), ("timed_multi", ["-n", "3"])], ids=["simple", "multi"]
)
@pytest.mark.parametrize(
    "example", ["pipeline_test", "split_merge", "grouping_onetoall", "pipeline_composite"]
)
def test_results_are_those_of_simple(tmp_path, mapping, extra, example):
    reference = cli(tmp_path, "simple", GT + example, "-i", "6")
    done = cli(tmp_path, mapping, GT + example, "-i", "6", *extra, "--no-graph-figures")
    assert done.returncode == 0, done.stderr
    assert multiset(outputs(done.stdout)) == multiset(outputs(reference.stdout))
    assert done.stdout.count("\n") == reference.stdout.count("\n")  # only results on stdout


def test_default_files_and_messages(tmp_path):
    done = cli(tmp_path, "timed_multi", GT + "grouping_alltoone", "-i", "10", "-n", "4", graphviz=False)
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"Timing monitor enabled for 3 PEs \(run_id=(\d{8}T\d{12}Z)\)\.", done.stderr).group(1)
    folder = tmp_path / "timings"
    names = {p.name for p in folder.iterdir()}
    for middle in ("summary", "instances", "iteration_timings", "iteration_timings_summary"):
        assert f"monitor_{middle}_run{run_id}.csv" in names
    for middle in ("shape", "concrete_shape"):
        assert f"monitor_{middle}_run{run_id}.json" in names
    assert f"monitor_abstract_graph_run{run_id}.svg" in names  # no Graphviz: SVG, drawn by us
    assert f"monitor_concrete_graph_run{run_id}.svg" in names
    assert f"monitor_TestProducer0_rank0_run{run_id}.csv" in names
    assert f"monitor_iterations_TestProducer0_rank0_run{run_id}.csv" in names
    for line in (
        f"Abstract workflow shape written to: timings/monitor_shape_run{run_id}.json",
        f"Concrete instance shape written to: timings/monitor_concrete_shape_run{run_id}.json",
        f"Timing summary (per PE) written to: timings/monitor_summary_run{run_id}.csv",
        f"Timing summary (per instance) written to: timings/monitor_instances_run{run_id}.csv",
        f"Timing summary (per iteration) written to: timings/monitor_iteration_timings_run{run_id}.csv",
        "Timing latency summary (from iterations) written to: "
        f"timings/monitor_iteration_timings_summary_run{run_id}.csv",
        f"Abstract workflow figure written to: timings/monitor_abstract_graph_run{run_id}.svg",
    ):
        assert line in done.stderr.splitlines()
    with open(folder / f"monitor_summary_run{run_id}.csv", newline="") as f:
        rows = {r["pe_id"]: r for r in csv.DictReader(f)}
    assert rows["TestProducer0"]["total_count"] == "10"
    assert rows["TestOneInOneOut2"]["total_count"] == "10"  # 'global': all on one instance


def test_original_flags(tmp_path):
    done = cli(
        tmp_path,
        "timed_simple",
        GT + "pipeline_test",
        "-i",
        "3",
        "--timing-dir",
        "td",
        "--timing-prefix",
        "wc",
        "--run-id",
        "r/1",
        "--summary-file",
        "s.csv",
        "--instance-summary-file",
        str(tmp_path / "i.csv"),
        "--iteration-summary-file",
        "it.csv",
        "--iteration-latency-summary-file",
        "lat.csv",
        "--shape-file",
        "a.json",
        "--concrete-shape-file",
        "c.json",
        "--abstract-figure-file",
        "a.svg",
        "--concrete-figure-file",
        "c.svg",
        "--print-shape",
    )
    assert done.returncode == 0, done.stderr
    for name in (
        "s.csv",
        "it.csv",
        "lat.csv",
        "a.json",
        "c.json",
        "a.svg",
        "c.svg",
        "wc_TestProducer0_rank0_runr_1.csv",
    ):
        assert (tmp_path / "td" / name).exists(), name
    assert (tmp_path / "i.csv").exists()
    assert "Abstract nodes: ['TestOneInOneOut1'," in done.stderr
    assert "Concrete edges: [('TestProducer0@0', 'TestOneInOneOut1@1')" in done.stderr


def test_quiet_and_no_figures(tmp_path):
    done = cli(tmp_path, "timed_simple", GT + "pipeline_test", "--no-graph-figures", "-q", "--run-id", "q")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert not list((tmp_path / "timings").glob("*graph*"))
    assert (tmp_path / "timings" / "monitor_summary_runq.csv").exists()


def test_listed_as_available(tmp_path):
    done = cli(tmp_path, "--list-mappings")
    rows = {line.split()[0]: line for line in done.stdout.splitlines()}
    for name in ("timed_simple", "timed_multi", "timed_mpi"):
        assert " available " in rows[name] + " ", rows[name]


def test_original_module_names(tmp_path):
    done = cli(
        tmp_path, "dispel4py.new.timed_multi_process", GT + "pipeline_test", "-n", "2", "--run-id", "m"
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "timings" / "monitor_summary_runm.csv").exists()


# -- errors: exit 2, one line naming the flag and the file, before anything runs ------------
def error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = [x for x in done.stderr.splitlines() if x.startswith("dispel4py: error:")]
    assert len(lines) == 1, done.stderr
    assert "Outputs:" not in done.stdout
    return lines[0]


def test_timing_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "afile").write_text("")
    line = error_line(
        cli(tmp_path, "timed_multi", GT + "pipeline_test", "-n", "2", "--timing-dir", "afile/t")
    )
    assert "--timing-dir: cannot create the folder afile/t: afile is a file" in line


def test_file_that_cannot_be_written(tmp_path):
    (tmp_path / "timings" / "s.json").mkdir(parents=True)
    line = error_line(cli(tmp_path, "timed_simple", GT + "pipeline_test", "--shape-file", "s.json"))
    assert "--shape-file: cannot write timings/s.json" in line


def test_figure_of_unknown_format(tmp_path):
    line = error_line(cli(tmp_path, "timed_simple", GT + "pipeline_test", "--concrete-figure-file", "c.jpg"))
    assert "--concrete-figure-file c.jpg: a figure is .svg, or .png (with Graphviz)" in line


def test_png_figure_without_graphviz(tmp_path):
    done = cli(
        tmp_path, "timed_simple", GT + "pipeline_test", "--abstract-figure-file", "a.png", graphviz=False
    )
    line = error_line(done)
    assert "--abstract-figure-file a.png needs Graphviz's 'dot' program" in line
    assert "or write .svg" in line


def test_missing_value_is_a_usage_error(tmp_path):
    done = cli(tmp_path, "timed_simple", GT + "pipeline_test", "--run-id")
    assert done.returncode == 2
    assert "--run-id: expected one argument" in done.stderr
