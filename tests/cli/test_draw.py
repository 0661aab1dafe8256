"""``dispel4py draw``: formats by suffix or --format, abstract and --concrete drawings, and
one clear line with exit code 2 for every bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.timeout(60)

PIPELINE = "dispel4py.examples.graph_testing.pipeline_test"
SPLIT_MERGE = "dispel4py.examples.graph_testing.grouping_split_merge"


def draw(tmp_path, *args: str, graphviz: bool = True) -> subprocess.CompletedProcess:
    """``python -m dispel4py draw *args`` in ``tmp_path``; ``graphviz=False`` hides ``dot``."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    if not graphviz:
        env["PATH"] = os.path.dirname(sys.executable)  # no Graphviz on this PATH
    return subprocess.run(
        [sys.executable, "-m", "dispel4py", "draw", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=env,
        check=False,
    )


def error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dispel4py draw: error: "), done.stderr
    return lines[0]


def test_dot_on_stdout_by_default(tmp_path):
    done = draw(tmp_path, PIPELINE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("digraph request {")
    assert "TestProducer00:out_output->TestOneInOneOut11:in_input;" in done.stdout
    assert done.stdout.count("->") == 5


def test_composite_workflow_is_drawn_as_a_cluster(tmp_path):
    done = draw(tmp_path, "dispel4py.examples.graph_testing.pipeline_composite", "--format", "mmd")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flowchart TB")
    assert "subgraph cluster_" in done.stdout and "\n  end\n" in done.stdout


@pytest.mark.parametrize("graphviz", [False, True], ids=["own-layout", "graphviz-if-installed"])
def test_svg_file(tmp_path, graphviz):
    done = draw(tmp_path, SPLIT_MERGE, "-o", "g.svg", graphviz=graphviz)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    root = ET.parse(tmp_path / "g.svg").getroot()
    assert root.tag.endswith("svg")
    text = (tmp_path / "g.svg").read_text()
    assert "WordCounter3" in text


def test_concrete_drawing_per_worker(tmp_path):
    done = draw(tmp_path, SPLIT_MERGE, "--concrete", "multi", "-n", "6", "-o", "c.dot")
    assert done.returncode == 0, done.stderr
    dot = (tmp_path / "c.dot").read_text()
    assert 'label="worker 0"' in dot and "RandomWordProducer0@0" in dot
    mpi = draw(tmp_path, SPLIT_MERGE, "--concrete", "mpi", "-n", "3", "--format", "dot")
    assert mpi.returncode == 0, mpi.stderr
    assert 'label="rank 2"' in mpi.stdout


def test_composite_file_workflow(tmp_path):
    source = textwrap.dedent(
        """
        from dispel4py.base import create_iterative_chain
        from dispel4py.examples.graph_testing import testing_PEs as t
        from dispel4py.workflow_graph import WorkflowGraph

        def double(x):
            return 2 * x

        chain = create_iterative_chain([double, double])
        chain.name = "doubling"
        graph = WorkflowGraph()
        graph.connect(t.TestProducer(), "output", chain, "input")
        """
    )
    (tmp_path / "wf.py").write_text(source)
    done = draw(tmp_path, "wf.py")
    assert done.returncode == 0, done.stderr
    assert 'label="doubling"' in done.stdout


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_png_with_graphviz(tmp_path):
    done = draw(tmp_path, PIPELINE, "-o", "g.png")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")


# -- errors: one line, exit 2 -------------------------------------------------------------
def test_png_without_graphviz(tmp_path):
    line = error(draw(tmp_path, PIPELINE, "-o", "g.png", graphviz=False))
    assert "needs Graphviz's 'dot' program" in line and "write .svg" in line
    assert not (tmp_path / "g.png").exists()


def test_unknown_format(tmp_path):
    line = error(draw(tmp_path, PIPELINE, "-o", "g.jpg"))
    assert "-o g.jpg: cannot tell the drawing format from '.jpg'" in line


def test_format_and_suffix_disagree(tmp_path):
    line = error(draw(tmp_path, PIPELINE, "-o", "g.svg", "--format", "dot"))
    assert "-o g.svg does not match --format dot" in line


def test_unwritable_file(tmp_path):
    line = error(draw(tmp_path, PIPELINE, "-o", "missing/g.dot"))
    assert "-o missing/g.dot: cannot write the drawing" in line


def test_unknown_mapping_for_concrete(tmp_path):
    line = error(draw(tmp_path, PIPELINE, "--concrete", "mutli", "-n", "2"))
    assert "unknown mapping 'mutli' (did you mean 'multi'?)" in line


def test_num_without_concrete(tmp_path):
    line = error(draw(tmp_path, PIPELINE, "-n", "4"))
    assert "-n and -s apply to --concrete MAPPING" in line


def test_mpi_needs_num(tmp_path):
    line = error(draw(tmp_path, PIPELINE, "--concrete", "mpi"))
    assert "--concrete mpi needs -n N" in line


def test_missing_workflow(tmp_path):
    line = error(draw(tmp_path, "no_such_module_xyz"))
    assert "no_such_module_xyz" in line


def test_bad_format_choice_is_an_argparse_error(tmp_path):
    done = draw(tmp_path, PIPELINE, "--format", "gif")
    assert done.returncode == 2
    assert "invalid choice: 'gif'" in done.stderr
