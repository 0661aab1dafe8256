"""Usage errors found before a run starts: input values, options before the mapping name,
and a workflow module that exits while being imported. All exit 2 with one error line."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import textwrap

import pytest

from dispel4py.cli import args as cli  # where the argument parsing lives
from dispel4py.errors import UsageError
from dispel4py.mappings import BUILTIN, get_mapping, mapping_status, options

pytestmark = pytest.mark.timeout(60)

PIPELINE = "dispel4py.examples.graph_testing.pipeline_test"
ONE = "Outputs: {'TestOneInOneOut5': {'output': [1]}}\n"


def error_lines(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if x.startswith("dispel4py: error:")]


def workflow(tmp_path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


# -- 1. list elements that are not dicts ----------------------------------------------------------
def test_data_list_of_numbers_is_a_usage_error(run_cli):
    done = run_cli("simple", PIPELINE, "-d", '{"TestProducer0": [5, 7]}')
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    (line,) = error_lines(done.stderr)
    assert line == (
        "dispel4py: error: input for TestProducer0 has int 5 at position 0 of its list, not a dict; "
        'give a number of iterations ({"TestProducer0": 3}) or a list of input dicts '
        '({"TestProducer0": [{"input": 5}]})'
    )
    assert "Traceback" not in done.stderr


def test_file_list_of_numbers_is_a_usage_error(run_cli, tmp_path):
    data = tmp_path / "in.json"
    data.write_text('{"TestProducer": [5, 7]}')
    done = run_cli("simple", PIPELINE, "-f", str(data))
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "TestProducer0" in line and "not a dict" in line


# -- 2. inputs of a non-source PE -------------------------------------------------------------------
def test_iterations_for_a_non_source_pe(run_cli):
    done = run_cli("simple", PIPELINE, "-d", '{"TestOneInOneOut1": 3}')
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert line == (
        "dispel4py: error: TestOneInOneOut1 has connected inputs (input), so it cannot run "
        "3 iterations: give it a list of input dicts naming its inputs, e.g. "
        '{"TestOneInOneOut1": [{"input": 5}]}, or give the iterations to a source PE (TestProducer0)'
    )
    assert "Processing" not in done.stderr and "source PE and got no input" not in done.stderr


def test_unknown_input_port_for_a_non_source_pe(run_cli):
    done = run_cli("simple", PIPELINE, "-d", '{"TestOneInOneOut3": [{"inptu": 3}]}')
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert "input dict 0 for TestOneInOneOut3 names 'inptu'" in line
    assert "did you mean 'input'" in line
    assert "inputs of TestOneInOneOut3 are: input" in line
    assert "Traceback" not in done.stderr


def test_non_source_pe_fed_with_its_inputs_runs(run_cli):
    done = run_cli("simple", PIPELINE, "-d", '{"TestProducer0": 2, "TestOneInOneOut3": [{"input": 50}]}')
    assert done.returncode == 0, done.stderr
    outputs = ast.literal_eval(done.stdout.removeprefix("Outputs: "))
    assert sorted(outputs["TestOneInOneOut5"]["output"]) == [1, 2, 50]


# -- 3. options before the mapping name -------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("-n", "2", "multi", PIPELINE),
        ("--batch-size", "8", "multi", PIPELINE),
        ("--num=2", "-s", "multi", PIPELINE),
        ("-sn", "2", "multi", PIPELINE),
        ("-v", "simple", PIPELINE),
        ("-i", "1", "-a", "graph", "simple", PIPELINE),
    ],
    ids=["n", "batch-size", "num=", "sn", "v", "common"],
)
def test_options_before_the_mapping_name(run_cli, args):
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ONE


def test_option_of_another_mapping_before_the_mapping_name(run_cli):
    """Accepted and ignored with a warning (tests/compat/test_compat_other_options.py)."""
    done = run_cli("-n", "2", "simple", PIPELINE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ONE
    assert "ignoring options of other mappings, not of simple: -n 2 (multi" in done.stderr


def test_unknown_option_with_a_value_before_the_mapping_name(run_cli):
    done = run_cli("--workers", "3", "multi", PIPELINE)
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "'3' is not a mapping" in line
    assert "'--workers' is not an option" in line
    assert "dispel4py <mapping> <workflow> [options]" in line
    assert "unknown mapping '3'" not in done.stderr


def test_unknown_mapping_after_options_still_suggests(run_cli):
    done = run_cli("-n", "2", "mutli", PIPELINE)
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "unknown mapping 'mutli' (did you mean 'multi'?)" in line


def _available_value_options():
    """(mapping, option) for every value-taking option of every available built-in mapping."""
    pairs = []
    for name in BUILTIN:
        if mapping_status(name) != "available":
            continue
        probe = argparse.ArgumentParser(add_help=False)
        get_mapping(name).add_arguments(probe)
        pairs += [(name, s) for a in probe._actions if a.nargs != 0 for s in a.option_strings]
    return pairs


@pytest.mark.parametrize(("mapping", "option"), _available_value_options())
def test_every_mapping_value_option_is_known_before_the_mapping(mapping, option):
    assert cli._find_mapping([option, "7", mapping, "wf.py"]) == mapping
    assert cli._find_mapping(["-q", option, "7", "-i", "2", mapping, "wf.py", option, "3"]) == mapping


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["simple", "wf.py"], "simple"),
        (["-d", '{"a": 1}', "-i", "-2", "simple", "wf"], "simple"),
        (["--num=4", "multi", "wf"], "multi"),
        (["-n4", "multi", "wf"], "multi"),
        (["-vv", "simple", "wf"], "simple"),
        (["--", "simple", "wf"], "simple"),
        (["-q"], None),
        ([], None),
    ],
)
def test_find_mapping(argv, expected):
    assert cli._find_mapping(argv) == expected


def test_ambiguous_option_before_the_mapping_name(monkeypatch):
    """An option that takes a value in one mapping and not in another cannot be placed."""
    monkeypatch.setitem(options._MAPPING_OPTIONS, "builtin", {"a": {"-x": "value"}, "b": {"-x": "flag"}})
    monkeypatch.setitem(options._MAPPING_OPTIONS, "plugin", {})
    with pytest.raises(UsageError, match=r"'-x' before the mapping name .*after the mapping name"):
        cli._find_mapping(["-x", "1", "a", "wf.py"])
    assert cli._find_mapping(["a", "wf.py", "-x", "1"]) == "a"


def test_finding_the_mapping_imports_no_optional_dependency():
    code = (
        "import sys\n"
        "from dispel4py.cli.args import _find_mapping\n"
        "assert _find_mapping(['-n', '2', '--batch-size', '3', 'mpi', 'wf.py']) == 'mpi'\n"
        "print(sorted(m for m in ('mpi4py', 'zmq', 'multiprocess', 'redis') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- 4. a workflow module that exits while being imported -------------------------------------------
@pytest.mark.parametrize(
    ("statement", "call"),
    [("sys.exit(4)", "sys.exit(4)"), ("sys.exit(0)", "sys.exit(0)"), ("sys.exit()", "sys.exit()")],
)
def test_sys_exit_while_importing_a_workflow_file(run_cli, tmp_path, statement, call):
    path = workflow(tmp_path, "quits", f"import sys\n{statement}\n")
    done = run_cli("simple", path)
    assert done.returncode == 2, done.stderr
    line = error_lines(done.stderr)[0]
    assert line.startswith(f"dispel4py: error: workflow module '{path}' called {call} while being imported")
    assert 'if __name__ == "__main__":' in line
    assert "quits.py" in done.stderr and statement in done.stderr  # where it was called
    assert done.stdout == ""


def test_sys_exit_while_importing_a_workflow_module(run_cli, tmp_path):
    workflow(tmp_path, "quitting_module", "raise SystemExit('no graph here')\n")
    done = run_cli("simple", "quitting_module", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert "workflow module 'quitting_module' called sys.exit('no graph here')" in line


def test_other_base_exception_while_importing(run_cli, tmp_path):
    path = workflow(tmp_path, "odd", "class Odd(BaseException):\n    pass\n\nraise Odd('strange')\n")
    done = run_cli("simple", path)
    assert done.returncode == 2, done.stderr
    assert "Odd: strange" in error_lines(done.stderr)[0]
    assert "odd.py" in done.stderr


def test_ctrl_c_while_importing_stays_ctrl_c(run_cli, tmp_path):
    path = workflow(tmp_path, "interrupted", "raise KeyboardInterrupt\n")
    done = run_cli("simple", path)
    assert done.returncode == 130, done.stderr
    assert "interrupted" in done.stderr
    assert "Traceback" not in done.stderr
    assert error_lines(done.stderr) == []
