"""Options of other mappings are accepted and ignored with one warning; unknown ones are errors.

Scripts loop over mappings with the same flags; the original's ``simple`` ignored ``-n``.
"""

from __future__ import annotations

import logging

import pytest

import dispel4py
from dispel4py.errors import UsageError
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)

PIPELINE = "dispel4py.examples.graph_testing.pipeline_test"
ONE = "Outputs: {'TestOneInOneOut5': {'output': [1]}}\n"
TWO = "Outputs: {'TestOneInOneOut5': {'output': [1, 2]}}\n"


def pipeline() -> WorkflowGraph:
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", t.TestOneInOneOut(), "input")
    return graph


def warnings_about_others(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ignoring options of other mappings")]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dispel4py: error:")]


# -- the CLI ----------------------------------------------------------------------------------------
def test_simple_ignores_n_and_s_with_one_warning(run_cli):
    done = run_cli("simple", PIPELINE, "-n", "4", "-s")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ONE
    (line,) = warnings_about_others(done.stderr)
    # the owners of each option, in the order of dispel4py --list-mappings
    assert line.startswith("ignoring options of other mappings, not of simple: -n 4 (multi, zmq_multi, mpi, ")
    assert "), -s (multi, zmq_multi, mpi" in line


def test_the_readme_shows_the_warning_a_run_prints(run_cli):
    """The README quotes the warning of ``simple … -n 4`` word for word."""
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    done = run_cli("simple", PIPELINE, "-n", "4")
    (line,) = warnings_about_others(done.stderr)
    assert f"`{line}`" in readme, line


def test_option_of_another_mapping_before_the_mapping_name(run_cli):
    done = run_cli("-n", "2", "simple", PIPELINE, "-i", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == TWO
    (line,) = warnings_about_others(done.stderr)
    assert "-n 2 (multi" in line


def test_value_of_an_ignored_option_is_not_taken_for_anything_else(run_cli):
    done = run_cli("simple", PIPELINE, "--start-method", "spawn", "-i", "2", "--batch-size", "7")
    assert done.returncode == 0, done.stderr
    assert done.stdout == TWO
    (line,) = warnings_about_others(done.stderr)
    assert "--start-method spawn (multi" in line and "--batch-size 7 (multi" in line


def test_original_provenance_export_url_is_ignored_too(run_cli, tmp_path):
    """--provenance-path and the others record provenance (docs/provenance.md); the export
    URL has no use here and is ignored with the warning."""
    folder = tmp_path / "prov"
    done = run_cli("simple", PIPELINE, "--provenance-path", folder, "--provenance-export-url", "http://x")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ONE
    (line,) = warnings_about_others(done.stderr)
    assert "--provenance-export-url http://x (the original's provenance)" in line
    assert list(folder.glob("bulk_*"))


def test_a_parallel_mapping_ignores_another_mappings_option(run_cli):
    done = run_cli("multi", PIPELINE, "-n", "1", "-thr", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ONE
    (line,) = warnings_about_others(done.stderr)
    assert line.startswith("ignoring options of other mappings, not of multi: -thr 3 (dyn_auto_multi")


def test_quiet_hides_the_warning(run_cli):
    done = run_cli("simple", PIPELINE, "-n", "4", "-q")
    assert done.returncode == 0
    assert done.stderr == ""


def test_no_warning_without_other_options(run_cli):
    done = run_cli("simple", PIPELINE)
    assert warnings_about_others(done.stderr) == []


def test_help_does_not_list_other_mappings_options(run_cli):
    done = run_cli("simple", PIPELINE, "--help")
    assert done.returncode == 0
    assert "--start-method" not in done.stdout and "--num" not in done.stdout


# -- bad input ----------------------------------------------------------------------------------------
def test_option_no_mapping_knows_is_a_usage_error_with_a_suggestion(run_cli):
    done = run_cli("simple", PIPELINE, "--batchsize", "3")
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = error_lines(done.stderr)
    assert line == (
        "dispel4py: error: unknown option '--batchsize' (did you mean '--batch-size'?): it is not an "
        "option of dispel4py or of any mapping (see dispel4py <mapping> --help)"
    )


def test_unknown_option_with_equals_sign(run_cli):
    done = run_cli("multi", PIPELINE, "--nmu=3")
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "unknown option '--nmu' (did you mean '--num'?)" in line


def test_unexpected_positional_argument(run_cli):
    done = run_cli("simple", PIPELINE, "extra")
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert line == "dispel4py: error: unexpected argument 'extra': dispel4py <mapping> <workflow> [options]"


def test_ignored_option_still_needs_its_value(run_cli):
    done = run_cli("simple", PIPELINE, "-n")
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert line == "dispel4py: error: argument -n: expected one argument"


# -- dispel4py.run ----------------------------------------------------------------------------------
def test_run_ignores_options_of_other_mappings_with_one_warning(caplog, fresh_ids):
    with caplog.at_level(logging.WARNING, logger="dispel4py"):
        result = dispel4py.run(pipeline(), mapping="simple", num=2, simple=True)
    assert result is not None
    assert result.outputs == {"TestOneInOneOut1": {"output": [1]}}
    (record,) = [r for r in caplog.records if "other mappings" in r.getMessage()]
    message = record.getMessage()
    assert message.startswith("ignoring options of other mappings, not of simple: num=2 (multi, zmq_multi, ")
    assert "), simple=True (multi, zmq_multi, mpi" in message


def test_run_rejects_an_option_no_mapping_knows():
    with pytest.raises(UsageError) as info:
        dispel4py.run(pipeline(), mapping="simple", nmu=2)
    assert (
        str(info.value)
        == "mapping 'simple' has no option 'nmu' (did you mean 'num'?); its options are: (none)"
    )


def test_run_keeps_its_own_options(caplog, fresh_ids):
    with caplog.at_level(logging.WARNING, logger="dispel4py"):
        result = dispel4py.run(pipeline(), {"TestProducer": 3}, mapping="multi", num=2)
    assert result is not None
    assert sorted(result.items("TestOneInOneOut1")) == [1, 2, 3]
    assert not [r for r in caplog.records if "other mappings" in r.getMessage()]
