"""A workflow module name is also looked up in the current directory, as ``python -m`` does,
and a near miss suggests the file ("did you mean squares.py?").

These run the ``dispel4py`` console script: ``python -m dispel4py`` already puts the
current directory on sys.path.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

SQUARES = """
    from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
    from dispel4py.workflow_graph import WorkflowGraph
    from helper import square


    class Numbers(ProducerPE):
        def _process(self, inputs):
            for n in range(1, 6):
                self.write("output", n)


    class Square(IterativePE):
        def _process(self, n):
            return square(n)


    class Total(ConsumerPE):
        def __init__(self):
            super().__init__()
            self.inputconnections["input"]["grouping"] = "global"
            self._add_output("total")
            self.total = 0

        def _process(self, n):
            self.total += n

        def _postprocess(self):
            self.write("total", self.total)


    graph = WorkflowGraph()
    numbers, sq, total = Numbers(), Square(), Total()
    graph.connect(numbers, "output", sq, "input")
    graph.connect(sq, "output", total, "input")
"""
RESULT = "Outputs: {'Total2': {'total': [55]}}\n"


def console(*args: str, cwd) -> subprocess.CompletedProcess:
    script = os.path.join(os.path.dirname(sys.executable), "dispel4py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [script, *args], capture_output=True, text=True, timeout=30, cwd=cwd, env=env, check=False
    )


@pytest.fixture
def folder(tmp_path, write_workflow):
    write_workflow("squares", SQUARES)
    write_workflow("helper", "def square(n):\n    return n * n\n")
    return tmp_path


def error_line(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if x.startswith("dispel4py: error:")]
    return line


def test_module_name_in_the_current_directory(folder):
    done = console("simple", "squares", "-q", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout == RESULT


@pytest.mark.parametrize("mapping", [("multi", "-n", "2"), ("multi", "-n", "2", "--start-method", "spawn")])
def test_module_name_in_the_current_directory_with_worker_processes(folder, mapping):
    done = console(*mapping, "squares", "-q", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout == RESULT


def test_dotted_name_below_the_current_directory(folder):
    sub = folder / "flows"
    sub.mkdir()
    (folder / "squares.py").rename(sub / "squares.py")
    (folder / "helper.py").rename(sub / "helper.py")
    source = (sub / "squares.py").read_text()
    (sub / "squares.py").write_text(source.replace("from helper", "from flows.helper"))
    done = console("simple", "flows.squares", "-q", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout == RESULT


def test_file_path_still_works(folder, tmp_path):
    done = console("simple", str(folder / "squares.py"), "-q", cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout == RESULT


# -- bad input: a clear message, exit 2 ------------------------------------------------------------------
def test_near_miss_module_name_suggests_the_file(folder):
    done = console("simple", "square", cwd=folder)
    assert done.returncode == 2
    assert done.stdout == ""
    assert error_line(done.stderr) == (
        "dispel4py: error: workflow 'square' not found: it is neither a file nor an importable "
        "module (did you mean squares.py?); give a path to a .py file or a module name on "
        "PYTHONPATH or in the current directory"
    )


def test_near_miss_file_suggests_the_file(folder):
    done = console("simple", "sqaures.py", cwd=folder)
    assert done.returncode == 2
    assert error_line(done.stderr) == (
        "dispel4py: error: workflow file 'sqaures.py' does not exist (did you mean squares.py?)"
    )


def test_near_miss_file_in_another_folder(folder, tmp_path):
    done = console("simple", f"{folder.name}/squres.py", cwd=folder.parent)
    assert done.returncode == 2
    assert error_line(done.stderr) == (
        f"dispel4py: error: workflow file '{folder.name}/squres.py' does not exist "
        f"(did you mean {folder.name}/squares.py?)"
    )


def test_no_suggestion_when_nothing_is_near(folder):
    done = console("simple", "wordcount", cwd=folder)
    assert done.returncode == 2
    line = error_line(done.stderr)
    assert line.startswith("dispel4py: error: workflow 'wordcount' not found")
    assert "did you mean" not in line


def test_import_error_inside_the_module_is_not_hidden(folder, write_workflow):
    write_workflow("broken", "import no_such_module_here\n")
    done = console("simple", "broken", cwd=folder)
    assert done.returncode == 2
    line = error_line(done.stderr)
    assert "failed to load workflow 'broken': ModuleNotFoundError: " in line
    assert "No module named 'no_such_module_here'" in line
