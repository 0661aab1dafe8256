"""The timed mappings' numbers and files: the per-call timing hook (off in normal runs),
percentiles, options checked before the run, shapes, and the original's file names and
columns (so the original's analysis scripts keep working)."""

from __future__ import annotations

import csv
import glob
import json
import logging
import random
import re
import time
from pathlib import Path

import numpy as np
import pytest

import dispel4py
from dispel4py.engine.calls import InstanceCalls
from dispel4py.engine.plan import make_plan
from dispel4py.engine.tuning import Tuning
from dispel4py.errors import UsageError
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.observe import timing, timing_files, timing_options
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_ids")]

# the original's columns, file by file (timed_multi_process.py)
COLUMNS = {
    "instance": ["pe_id", "rank", "count", "total_secs", "avg_secs"],
    "iterations": ["pe_id", "rank", "instance_id", "iteration_index", "iteration_secs"],
    "summary": [
        "pe_id",
        "rank_count",
        "ranks",
        "total_count",
        "total_secs",
        "avg_secs",
        "min_secs",
        "p50_secs",
        "p95_secs",
        "max_secs",
    ],
    "instances": [
        "pe_id",
        "rank",
        "instance_id",
        "total_count",
        "total_secs",
        "avg_secs",
        "min_secs",
        "p50_secs",
        "p95_secs",
        "max_secs",
    ],
    "iteration_timings": [
        "pe_id",
        "rank",
        "instance_id",
        "iteration_index",
        "iteration_secs",
        "instance_p50_secs",
        "instance_p95_secs",
        "instance_max_secs",
    ],
    "iteration_timings_summary": [
        "pe_id",
        "rank",
        "instance_id",
        "iteration_count",
        "total_secs",
        "avg_secs",
        "min_secs",
        "p50_secs",
        "p95_secs",
        "max_secs",
    ],
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Timed runs write under ./timings by default: keep them in the test's folder."""
    monkeypatch.chdir(tmp_path)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def delayed_pipeline(delay: float = 0.02, fan: int = 2) -> tuple[WorkflowGraph, t.TestProducer]:
    graph = WorkflowGraph()
    prod, slow, last = t.TestProducer(), t.TestDelayOneInOneOut(delay), t.TestOneInOneOut()
    slow.numprocesses = fan
    graph.connect(prod, "output", slow, "input")
    graph.connect(slow, "output", last, "input")
    return graph, prod


# -- the hook --------------------------------------------------------------------------------
def test_timing_is_off_in_normal_runs():
    graph, prod = delayed_pipeline(0.0)
    result = dispel4py.run(graph, {prod: 3}, "simple")
    assert all(s.iteration_s is None for s in result.stats)
    plan = make_plan(graph, None, 1)
    calls = InstanceCalls(plan, 0)
    calls.add(0)

    def fn():
        return None

    assert calls.timed(0, fn) is fn  # nothing wrapped: a normal run pays nothing per item
    assert Tuning.from_options({}).timings is False
    assert Tuning.from_options({"timings": True, "batch_size": 8}) == Tuning(batch_size=8, timings=True)


def test_a_call_excludes_the_instances_nested_inside_it():
    graph, _ = delayed_pipeline(0.0, fan=1)
    plan = make_plan(graph, None, 1)
    calls = InstanceCalls(plan, 0, timings=True)
    for iid in range(3):
        calls.add(iid)

    def outer(n):
        calls.call(1, "process", lambda: time.sleep(0.05))  # nested: another instance's time
        return n + 1

    timed = calls.timed(0, outer)
    calls.call(0, "process", lambda: [timed(1), timed(2)])
    assert len(calls.stats[0].iteration_s) == 2
    assert max(calls.stats[0].iteration_s) < 0.02
    assert calls.stats[1].busy_s >= 0.09


def test_iteration_timings_of_a_run():
    graph, prod = delayed_pipeline(0.02)
    result = dispel4py.run(graph, {prod: 6}, "timed_simple", no_graph_figures=True)
    assert result is not None
    slow = [s for s in result.stats if s.pe_id == "TestDelayOneInOneOut1"]
    assert sum(len(s.iteration_s) for s in slow) == 6
    assert all(0.019 <= x < 0.2 for s in slow for x in s.iteration_s)
    producer = next(s for s in result.stats if s.pe_id == "TestProducer0")
    assert len(producer.iteration_s) == producer.calls == 6
    assert max(producer.iteration_s) < 0.015  # the sleeps downstream are not the producer's


# -- numbers -----------------------------------------------------------------------------
def test_percentile_interpolates_linearly_like_numpy():
    rng = random.Random(4)
    for n in (1, 2, 3, 10, 101):
        values = sorted(rng.random() for _ in range(n))
        for p in (0, 50, 95, 100):
            assert timing.percentile(values, p) == pytest.approx(float(np.percentile(values, p)))
    assert timing.percentile([], 50) == 0.0
    assert timing.latency_stats([]) == {"min": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    assert timing.latency_stats([3.0, 1.0, 2.0]) == {
        "min": 1.0,
        "p50": 2.0,
        "p95": pytest.approx(2.9),
        "max": 3.0,
    }


def test_safe_token():
    assert timing.safe_token("run 1/a:b") == "run_1_a_b"
    assert timing.safe_token("._x-1.2_.") == "x-1.2"
    assert timing.safe_token("...") == "unknown"


# -- options -----------------------------------------------------------------------------
def test_options_defaults_and_paths(tmp_path):
    opts = timing.TimingOptions.from_options(
        {"summary_file": "sub/s.csv", "shape_file": str(tmp_path / "a.json")}
    )
    assert re.fullmatch(r"\d{8}T\d{12}Z", opts.run_id)
    assert opts.directory == Path("timings") and (tmp_path / "timings" / "sub").is_dir()
    assert opts.path("summary_file", "x") == Path("timings/sub/s.csv")  # relative: under --timing-dir
    assert opts.path("shape_file", "x") == tmp_path / "a.json"  # absolute: as given
    assert opts.path("instance_summary_file", "d.csv") == Path("timings/d.csv")
    assert opts.name("summary") == f"monitor_summary_run{opts.run_id}.csv"
    assert timing.TimingOptions.from_options({"timing_run_id": "my run/1"}).run_id == "my_run_1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timing_dir": "afile/sub"}, "--timing-dir: cannot create the folder afile/sub: afile is a file"),
        ({"summary_file": "afile/s.csv"}, "--summary-file: cannot create the folder timings/afile"),
        ({"abstract_figure_file": "g.jpg"}, "--abstract-figure-file g.jpg: a figure is .svg, or .png"),
        ({"concrete_figure_file": "g.dot"}, "--concrete-figure-file g.dot: a figure is .svg, or .png"),
    ],
)
def test_options_errors(options, message, tmp_path):
    (tmp_path / "afile").write_text("")
    (tmp_path / "timings").mkdir()
    (tmp_path / "timings" / "afile").write_text("")
    with pytest.raises(UsageError, match=re.escape(message)):
        timing.TimingOptions.from_options(options)


def test_png_figure_needs_graphviz(monkeypatch):
    monkeypatch.setattr(timing_options, "graphviz", lambda: None)
    with pytest.raises(UsageError, match=r"--abstract-figure-file g\.png needs Graphviz's 'dot'"):
        timing.TimingOptions.from_options({"abstract_figure_file": "g.png"})
    opts = timing.TimingOptions.from_options({"abstract_figure_file": "g.png", "no_graph_figures": True})
    assert not opts.figures  # not drawn, so not checked
    assert timing.TimingOptions.from_options({}).figure_format("abstract_figure_file") == "svg"


def test_unwritable_file_fails_before_the_run(tmp_path):
    (tmp_path / "timings").mkdir()
    (tmp_path / "timings" / "s.json").mkdir()  # a folder where the shape file should go
    graph, prod = delayed_pipeline(0.0)
    with pytest.raises(UsageError, match=r"--shape-file: cannot write timings/s\.json"):
        dispel4py.run(graph, {prod: 2}, "timed_simple", shape_file="s.json")
    assert not glob.glob("timings/*summary*")


# -- shapes --------------------------------------------------------------------------------
def test_shapes():
    graph = WorkflowGraph()
    prod, a, b, merge = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut(), t.TestTwoInOneOut()
    merge.inputconnections["input0"]["grouping"] = [0]
    graph.connect(prod, "output", a, "input")
    graph.connect(prod, "output", b, "input")
    graph.connect(a, "output", merge, "input0")
    graph.connect(b, "output", merge, "input1")
    plan = make_plan(graph, None, 5)
    abstract = timing.abstract_shape(plan)
    assert abstract["nodes"] == sorted(abstract["nodes"])
    assert abstract["edges"][2] == {
        "from": "TestOneInOneOut1",
        "to": "TestTwoInOneOut3",
        "from_connection": "output",
        "to_connection": "input0",
    }
    assert abstract["topological_order"][0] == "TestProducer0"
    concrete = timing.concrete_shape(plan)
    assert concrete["processes"] == plan.instances
    assert [n["instance_id"] for n in concrete["nodes"]] == sorted(
        n["instance_id"] for n in concrete["nodes"]
    )
    assert set(concrete["nodes"][0]) == {"instance_id", "pe_id", "rank", "worker"}
    keys = {
        "from",
        "to",
        "from_pe_id",
        "to_pe_id",
        "from_rank",
        "to_rank",
        "from_connection",
        "to_connection",
    }
    assert all(set(e) == keys | {"communication"} for e in concrete["edges"])
    assert {e["communication"] for e in concrete["edges"]} == {"shuffle", "[0]"}
    grouped = {(e["from_rank"], e["to_rank"]) for e in concrete["edges"] if e["communication"] == "[0]"}
    assert grouped == {
        (a, m) for a in plan.instances["TestOneInOneOut1"] for m in plan.instances["TestTwoInOneOut3"]
    }
    order = concrete["topological_order"]
    for e in concrete["edges"]:
        assert order.index(e["from"]) < order.index(e["to"])


# -- files -----------------------------------------------------------------------------------
def run_timed(mapping: str, **options):
    graph, prod = delayed_pipeline(0.005)
    options.setdefault("timing_run_id", "t1")
    return dispel4py.run(graph, {prod: 8}, mapping, **options)


@pytest.mark.parametrize(("mapping", "options"), [("timed_simple", {}), ("timed_multi", {"num": 3})])
def test_files_have_the_original_names_and_columns(mapping, options, monkeypatch):
    monkeypatch.setattr(timing_options, "graphviz", lambda: None)  # figures as SVG
    result = run_timed(mapping, **options)
    assert result.outputs == {"TestOneInOneOut2": {"output": result.outputs["TestOneInOneOut2"]["output"]}}
    assert sorted(result.outputs["TestOneInOneOut2"]["output"]) == list(range(1, 9))
    folder = Path("timings")
    for kind in ("summary", "instances", "iteration_timings", "iteration_timings_summary"):
        header, _ = read_csv(folder / f"monitor_{kind}_runt1.csv")
        assert header == COLUMNS[kind], kind
    for stats in result.stats:
        token = f"{stats.pe_id}_rank{stats.instance}"
        header, rows = read_csv(folder / f"monitor_{token}_runt1.csv")
        assert header == COLUMNS["instance"]
        assert [(r["pe_id"], int(r["rank"]), int(r["count"])) for r in rows] == [
            (stats.pe_id, stats.instance, stats.calls)
        ]
        header, rows = read_csv(folder / f"monitor_iterations_{token}_runt1.csv")
        assert header == COLUMNS["iterations"]
        assert [int(r["iteration_index"]) for r in rows] == list(range(1, stats.calls + 1))
        assert {r["instance_id"] for r in rows} <= {f"{stats.pe_id}@{stats.instance}"}
    shape = json.loads((folder / "monitor_shape_runt1.json").read_text())
    assert list(shape) == ["run_id", "nodes", "edges", "topological_order"] and shape["run_id"] == "t1"
    concrete = json.loads((folder / "monitor_concrete_shape_runt1.json").read_text())
    assert list(concrete) == ["run_id", "processes", "nodes", "edges", "topological_order"]
    assert (folder / "monitor_abstract_graph_runt1.svg").read_text().startswith("<?xml")
    assert (folder / "monitor_concrete_graph_runt1.svg").exists()


def test_summaries_agree_with_the_counters():
    result = run_timed("timed_multi", num=4)
    per_pe = result.per_pe()
    _, summary = read_csv(Path("timings/monitor_summary_runt1.csv"))
    assert [r["pe_id"] for r in summary] == sorted(per_pe)
    for row in summary:
        stats = [s for s in result.stats if s.pe_id == row["pe_id"]]
        assert int(row["total_count"]) == per_pe[row["pe_id"]]["items_in"]
        assert int(row["rank_count"]) == len(stats)
        assert row["ranks"] == ";".join(str(s.instance) for s in sorted(stats, key=lambda s: s.instance))
        times = sorted(x for s in stats for x in s.iteration_s)
        assert float(row["total_secs"]) == pytest.approx(sum(times))
        assert float(row["p95_secs"]) == pytest.approx(timing.percentile(times, 95))
    _, slow = read_csv(Path("timings/monitor_instances_runt1.csv"))
    delayed = [r for r in slow if r["pe_id"] == "TestDelayOneInOneOut1"]
    assert sum(int(r["total_count"]) for r in delayed) == 8
    assert all(float(r["min_secs"]) >= 0.004 for r in delayed if int(r["total_count"]))
    _, every = read_csv(Path("timings/monitor_iteration_timings_runt1.csv"))
    assert len(every) == sum(s.calls for s in result.stats)
    _, lat = read_csv(Path("timings/monitor_iteration_timings_summary_runt1.csv"))
    assert {r["instance_id"] for r in lat} == {f"{s.pe_id}@{s.instance}" for s in result.stats if s.calls}


def test_the_originals_aggregation_reads_our_per_instance_files():
    """What the original's post-run step did: glob the per-rank files, read them with
    DictReader, sum per PE; it must give our per-PE summary."""
    result = run_timed("timed_simple")
    rows = []
    for path in sorted(glob.glob("timings/monitor_*_rank*_runt1.csv")):
        if Path(path).name.startswith("monitor_iterations_"):
            continue
        rows += read_csv(Path(path))[1]
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["pe_id"]] = totals.get(r["pe_id"], 0) + int(r["count"])
    assert totals == {pe: row["items_in"] for pe, row in result.per_pe().items()}


def test_explicit_files_and_no_figures(tmp_path):
    run_timed(
        "timed_simple",
        timing_dir="out",
        timing_prefix="wc",
        summary_file="s.csv",
        instance_summary_file=str(tmp_path / "abs" / "i.csv"),
        no_graph_figures=True,
    )
    assert Path("out/s.csv").exists() and (tmp_path / "abs" / "i.csv").exists()
    assert Path("out/wc_shape_runt1.json").exists()
    assert not glob.glob("out/*graph*")


def test_print_shape_and_messages(caplog):
    with caplog.at_level(logging.INFO, logger="dispel4py.timing"):
        run_timed("timed_simple", print_shape=True, no_graph_figures=True)
    text = caplog.text
    assert "Timing monitor enabled for 3 PEs (run_id=t1)." in text
    assert "Abstract nodes: ['TestDelayOneInOneOut1', 'TestOneInOneOut2', 'TestProducer0']" in text
    assert "Concrete topological order: ['TestProducer0@0'" in text
    for what in ("Abstract workflow shape", "Concrete instance shape", "Timing summary (per PE)"):
        assert f"{what} written to: timings/" in text


def test_iteration_files_are_what_csv_writer_writes():
    """The fast line writer gives the bytes csv.writer gives (quoting, float repr, CRLF)."""
    import io

    from dispel4py.engine.result import InstanceStats

    stats = InstanceStats('odd,"id"', 3, 0, calls=3, iteration_s=[0.1, 1e-07, 2.5])
    (row,) = timing_files._instances([stats])
    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow(COLUMNS["iterations"])
    writer.writerows([stats.pe_id, 3, f"{stats.pe_id}@3", i, x] for i, x in enumerate(stats.iteration_s, 1))
    path = timing_files._write_lines(Path("it.csv"), "--x", COLUMNS["iterations"], row.iteration_lines())
    assert path.read_bytes() == expected.getvalue().encode()
