"""multi and zmq_multi: start methods, concurrent runs, the original's library calls."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys

import pytest
from _helpers import WORKFLOWS, cli, run

pytestmark = pytest.mark.timeout(90)

GT = "dispel4py.examples.graph_testing."

MAIN_SCRIPT = """
import sys
import dispel4py
from dispel4py.base import IterativePE, ProducerPE, SimpleFunctionPE
from dispel4py.workflow_graph import WorkflowGraph

class Numbers(ProducerPE):          # defined in __main__
    def _process(self, inputs):
        for i in range(50):
            self.write("output", i)

offset = 100
def shift(x):                        # a closure over a __main__ global
    return x + offset

graph = WorkflowGraph()
numbers, plus = Numbers(), SimpleFunctionPE(shift)
square = SimpleFunctionPE(lambda x: x * x)
square.name = "square"
graph.connect(numbers, "output", plus, "input")
graph.connect(plus, "output", square, "input")
if __name__ == "__main__":  # spawn re-imports this module in every worker
    result = dispel4py.run(graph, None, sys.argv[1], num=2, start_method=sys.argv[2])
    print(sorted(result.outputs["square2"]["output"]))
"""


@pytest.mark.parametrize("mapping", ["multi", "zmq_multi"])
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_main_module_pes_lambdas_and_closures(tmp_path, mapping: str, start_method: str) -> None:
    script = tmp_path / "main_script.py"
    script.write_text(MAIN_SCRIPT)
    done = run([sys.executable, str(script), mapping, start_method])
    assert done.returncode == 0, done.stderr
    assert ast.literal_eval(done.stdout.strip()) == sorted((i + 100) ** 2 for i in range(50))


def test_two_zmq_runs_at_once_do_not_collide() -> None:
    procs = [
        subprocess.Popen(
            cli("zmq_multi", str(WORKFLOWS / "crossfeed.py"), "-n", "2"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        line = next(ln for ln in out.splitlines() if ln.startswith("Outputs: "))
        assert sum(ast.literal_eval(line[len("Outputs: ") :])["Sum3"]["total"]) == 1000


@pytest.mark.parametrize("mapping", ["multi", "zmq_multi"])
def test_verbose_prints_the_original_per_instance_lines(mapping: str) -> None:
    done = run(cli(mapping, GT + "grouping_alltoone", "-i", "10", "-n", "11", "-v", "--original-layout"))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert (
        "Processes: {'TestProducer0': range(0, 1), 'TestOneInOneOut1': range(1, 6), "
        "'TestOneInOneOut2': range(6, 11)}" in lines
    )
    assert "TestProducer0 (rank 0): Processed 10 iterations." in lines
    for rank in range(1, 6):  # shuffle is an exact round-robin: 10 items over 5 instances
        assert f"TestOneInOneOut1 (rank {rank}): Processed 2 iterations." in lines
    assert "TestOneInOneOut2 (rank 6): Processed 10 iterations." in lines  # 'global'
    for rank in range(7, 11):
        assert f"TestOneInOneOut2 (rank {rank}): Processed 0 iterations." in lines


def test_original_multi_process_library_call() -> None:
    """The original test files pass the argparse.Namespace *class* with class attributes."""
    from dispel4py.examples.graph_testing import testing_PEs as t
    from dispel4py.new.multi_process import process
    from dispel4py.workflow_graph import WorkflowGraph

    graph = WorkflowGraph()
    prod, cons1, cons2 = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(prod, "output", cons1, "input")
    graph.connect(cons1, "output", cons2, "input")
    args = argparse.Namespace
    args.num = 5
    args.simple = False
    args.results = True
    try:
        results = process(graph, {prod: [{}, {}, {}, {}, {}]}, args)
    finally:
        del args.num, args.simple, args.results
    assert results is not None
    items = []
    while (entry := results.get(timeout=1)) != 12:  # STATUS_TERMINATED ends the queue
        items.append(entry)
    assert sorted(items) == [(cons2.id, "output", i) for i in range(1, 6)]
