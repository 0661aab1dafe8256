"""The simple mapping: every graph_testing example (spec §6), the library API, failures."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap

import pytest

import dispel4py
from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.engine.result import InstanceStats, RunResult
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.new.simple_process import process, process_and_return
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)

EXAMPLES = "dispel4py.examples.graph_testing."
N = 3


def parse_outputs(stdout: str) -> dict:
    (line,) = [x for x in stdout.splitlines() if x.startswith("Outputs: ")]
    text = re.sub(r"np\.(?:str_|int64|float64)\(([^()]*)\)", r"\1", line[len("Outputs: ") :])
    return ast.literal_eval(text)


def run_example(run_cli, name: str, iterations: int = N, *extra: str) -> tuple[dict, str]:
    done = run_cli("simple", EXAMPLES + name, "-i", str(iterations), *extra)
    assert done.returncode == 0, done.stderr
    return parse_outputs(done.stdout), done.stderr


def check_word_counts(items: list, max_items: int, exact: bool) -> None:
    """Each output is [word, count]; per word, counts go 1, 2, 3, ... in output order."""
    if exact:
        assert len(items) == max_items
    else:
        assert len(items) <= max_items
    seen: dict[str, int] = {}
    for word, count in items:
        assert word in t.WORDS
        seen[word] = seen.get(word, 0) + 1
        assert count == seen[word], items


ONE_TO_N = list(range(1, N + 1))

EXACT = {
    "pipeline_test": {"TestOneInOneOut5": {"output": ONE_TO_N}},
    "parallel_pipeline": {"TestOneInOneOut2": {"output": ONE_TO_N}, "TestOneInOneOut3": {"output": ONE_TO_N}},
    "partition_parallel_pipeline": {
        "TestOneInOneOut2": {"output": ONE_TO_N},
        "TestOneInOneOut3": {"output": ONE_TO_N},
    },
    "pipeline_composite": {"PE_subtract3": {"output": [5.0, 7.0, 9.0]}},
    "teecopy": {"TestOneInOneOut1": {"output": ONE_TO_N}, "TestOneInOneOut2": {"output": ONE_TO_N}},
    "producer_tee": {"TestOneInOneOut2": {"output": ONE_TO_N}, "TestOneInOneOut3": {"output": ONE_TO_N}},
    "split_merge": {"TestTwoInOneOut3": {"output": ["1", "2", "3", "1", "2", "3"]}},
    "unconnected_pipeline": {
        "TestOneInOneOut5": {"output": ONE_TO_N},
        "TestOneInOneOut11": {"output": ONE_TO_N},
    },
    # two instances, each receiving every item ('all'): the same on every mapping
    "grouping_onetoall": {"TestOneInOneOut1": {"output": [1, 2, 3, 1, 2, 3]}},
    "grouping_onetoall_stateful": {"TestOneInOneOut1": {"output": [1, 2, 3, 1, 2, 3]}},
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_example_exact_result(run_cli, name):
    outputs, _ = run_example(run_cli, name)
    assert outputs == EXACT[name]


@pytest.mark.parametrize("name", ["grouping_alltoone", "grouping_alltoone_stateful"])
def test_grouping_alltoone(run_cli, name):
    outputs, _ = run_example(run_cli, name)
    assert list(outputs) == ["TestOneInOneOut2"]
    assert sorted(outputs["TestOneInOneOut2"]["output"]) == ONE_TO_N


def test_large_teecopy(run_cli):
    # the producer writes k items per call, k being sys.argv[4] (here the '3' of '-i 3')
    outputs, _ = run_example(run_cli, "large_teecopy")
    expected = [f"{c}:{i}" for c in range(1, N + 1) for i in range(N)]
    assert outputs == {"TestOneInOneOut2": {"output": expected}, "TestOneInOneOut3": {"output": expected}}


@pytest.mark.parametrize(
    ("name", "pe", "per_iteration", "exact"),
    [
        ("grouping_split_merge", "WordCounter3", 2, False),  # two random filters feed the counter
        ("group_by", "WordCounter4", 1, True),
        ("group_by_stateful", "WordCounter4", 1, True),
        ("word_count", "WordCounter1", 1, True),
        ("word_count_filter", "WordCounter2", 1, False),  # a random filter drops about half
    ],
)
def test_random_word_examples(run_cli, example_seed, name, pe, per_iteration, exact):
    iterations = 6
    for _ in range(2):
        outputs, _ = run_example(run_cli, name, iterations)
        assert set(outputs) <= {pe}
        items = outputs.get(pe, {}).get("output", [])
        check_word_counts(items, per_iteration * iterations, exact)


def test_word_count_with_many_items(run_cli, example_seed):
    outputs, _ = run_example(run_cli, "word_count", 200)
    check_word_counts(outputs["WordCounter1"]["output"], 200, True)


def test_delayed_pipeline(run_cli):
    outputs, stderr = run_example(run_cli, "delayed_pipeline", 2, "--log-to-stderr")  # PE logs: stdout
    assert outputs == {"TestDelayOneInOneOut2": {"output": [1, 2]}}
    found = re.search(r"TestDelayOneInOneOut2 \(rank 2\): Average processing time: (\d+\.\d+)", stderr)
    assert found, stderr
    assert float(found.group(1)) >= 1.0, stderr  # each call sleeps 1 s; a loaded machine adds to it


def test_pipeline_test_exact_stdout(run_cli):
    done = run_cli("simple", EXAMPLES + "pipeline_test", "-i", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Outputs: {'TestOneInOneOut5': {'output': [1, 2, 3, 4, 5]}}"]
    assert "Processing 5 iterations." in done.stderr


def test_verbose_prints_processes_and_iterations(run_cli):
    done = run_cli("simple", EXAMPLES + "pipeline_test", "-i", "3", "-v")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "TestProducer0 (rank 0): Processed 3 iterations." in lines
    assert "TestOneInOneOut5 (rank 5): Processed 3 iterations." in lines
    assert any(x.startswith("Processes: {'TestProducer0': range(0, 1)") for x in lines)


def test_one_iteration_is_singular(run_cli):
    done = run_cli("simple", EXAMPLES + "pipeline_test", "-v")
    assert "Processing 1 iteration." in done.stderr.splitlines()
    assert "TestProducer0 (rank 0): Processed 1 iteration." in done.stderr.splitlines()


def test_d_and_f_inputs(run_cli, tmp_path):
    outputs, _ = parse_outputs_of(run_cli("simple", EXAMPLES + "pipeline_test", "-d", '{"TestProducer": 4}'))
    assert outputs == {"TestOneInOneOut5": {"output": [1, 2, 3, 4]}}
    data = tmp_path / "inputs.json"
    data.write_text('{"TestProducer0": [{}, {}]}')
    outputs, _ = parse_outputs_of(run_cli("simple", EXAMPLES + "pipeline_test", "-f", str(data)))
    assert outputs == {"TestOneInOneOut5": {"output": [1, 2]}}


def parse_outputs_of(done: subprocess.CompletedProcess) -> tuple[dict, str]:
    assert done.returncode == 0, done.stderr
    return parse_outputs(done.stdout), done.stderr


# -- the library API -------------------------------------------------------------------------
@pytest.fixture
def pipeline(fresh_ids):
    graph = WorkflowGraph()
    prod, cons = t.TestProducer(), t.TestOneInOneOut()
    graph.connect(prod, "output", cons, "input")
    return graph, prod, cons


def test_run_returns_run_result(pipeline):
    graph, prod, _ = pipeline
    result = dispel4py.run(graph, {prod: 3}, "simple")
    assert isinstance(result, RunResult)
    assert result.outputs == {"TestOneInOneOut1": {"output": [1, 2, 3]}}
    assert result.items("TestOneInOneOut1") == [1, 2, 3]
    assert result.mapping == "simple"
    assert all(isinstance(s, InstanceStats) for s in result.stats)
    by_pe = {s.pe_id: s for s in result.stats}
    assert by_pe["TestProducer0"].calls == 3 and by_pe["TestProducer0"].items_out == 3
    assert by_pe["TestOneInOneOut1"].calls == 3 and by_pe["TestOneInOneOut1"].items_out == 3
    assert result.per_pe()["TestOneInOneOut1"]["instances"] == 1
    assert result.processes.startswith("Processes: {'TestProducer0': range(0, 1)")


def test_run_defaults_to_one_call_of_each_source(pipeline):
    graph, _, _ = pipeline
    assert dispel4py.run(graph).outputs == {"TestOneInOneOut1": {"output": [1]}}


def test_run_rejects_unknown_mapping_option(pipeline):
    graph, prod, _ = pipeline
    with pytest.raises(dispel4py.UsageError, match="did you mean 'num'"):
        dispel4py.run(graph, {prod: 1}, "simple", nmu=4)


def test_process_and_return_keeps_pe_state_between_runs(pipeline):
    graph, prod, _ = pipeline
    assert process_and_return(graph, {prod: 5}) == {"TestOneInOneOut1": {"output": [1, 2, 3, 4, 5]}}
    assert process_and_return(graph, {"TestProducer": [{}, {}]}) == {"TestOneInOneOut1": {"output": [6, 7]}}
    assert process_and_return(graph, {"TestProducer0": 1}) == {"TestOneInOneOut1": {"output": [8]}}


def test_process_prints_outputs(pipeline, capsys):
    graph, prod, _ = pipeline
    assert process(graph, {prod: 2}) is None
    assert "Outputs: {'TestOneInOneOut1': {'output': [1, 2]}}" in capsys.readouterr().out


def test_resultmappings_collects_a_connected_output(fresh_ids):
    graph = WorkflowGraph()
    prod, a, b = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(prod, "output", a, "input")
    graph.connect(a, "output", b, "input")
    results = process_and_return(graph, {prod: 3}, resultmappings={a.id: ["output"]})
    assert results == {a.id: {"output": [1, 2, 3]}}
    both = process_and_return(graph, {prod: 1}, resultmappings={a.id: ["output"], b.id: ["output"]})
    assert both == {a.id: {"output": [4]}, b.id: {"output": [4]}}


def test_collect_option_of_run(pipeline):
    graph, prod, _ = pipeline
    result = dispel4py.run(graph, {prod: 2}, collect={"TestProducer0": ["output"]})
    assert result.outputs == {"TestProducer0": {"output": [1, 2]}}


# spec §8: the original simple_process_test.py
def test_original_pipeline(fresh_ids):
    graph = WorkflowGraph()
    prod, cons1, cons2 = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(prod, "output", cons1, "input")
    graph.connect(cons1, "output", cons2, "input")
    results = process_and_return(graph, {prod: [{}, {}, {}, {}, {}]})
    assert results == {cons2.id: {"output": [1, 2, 3, 4, 5]}}


def test_original_square(fresh_ids):
    graph = WorkflowGraph()
    prod, cons1, cons2, last = (
        t.TestProducer(2),
        t.TestOneInOneOut(),
        t.TestOneInOneOut(),
        t.TestTwoInOneOut(),
    )
    graph.connect(prod, "output0", cons1, "input")
    graph.connect(prod, "output1", cons2, "input")
    graph.connect(cons1, "output", last, "input0")
    graph.connect(cons2, "output", last, "input1")
    results = process_and_return(graph, {prod: [{}]})
    assert results == {last.id: {"output": ["1", "1"]}}


def test_original_tee(fresh_ids):
    graph = WorkflowGraph()
    prod, cons1, cons2 = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    graph.connect(prod, "output", cons1, "input")
    graph.connect(prod, "output", cons2, "input")
    results = process_and_return(graph, {prod: [{}, {}, {}, {}, {}]})
    assert results == {cons1.id: {"output": [1, 2, 3, 4, 5]}, cons2.id: {"output": [1, 2, 3, 4, 5]}}


def test_original_writer(fresh_ids):
    graph = WorkflowGraph()
    prod, cons1 = t.TestProducer(), t.TestOneInOneOutWriter()
    graph.connect(prod, "output", cons1, "input")
    results = process_and_return(graph, {prod: [{}, {}, {}, {}, {}]})
    assert results == {cons1.id: {"output": [1, 2, 3, 4, 5]}}


class Summer(IterativePE):
    """Accumulates and writes the total in postprocess."""

    def __init__(self):
        IterativePE.__init__(self)
        self.total = 0

    def _process(self, data):
        self.total += data

    def _postprocess(self):
        self.write("output", self.total)


def test_postprocess_writes_are_delivered_downstream(fresh_ids):
    graph = WorkflowGraph()
    prod, summer, after = t.TestProducer(), Summer(), t.TestOneInOneOut()
    graph.connect(prod, "output", summer, "input")
    graph.connect(summer, "output", after, "input")
    assert dispel4py.run(graph, {prod: 4}).outputs == {after.id: {"output": [10]}}


def test_postprocess_flushes_chain_in_order(fresh_ids):
    graph = WorkflowGraph()
    prod, s1, s2 = t.TestProducer(), Summer(), Summer()
    graph.connect(prod, "output", s1, "input")
    graph.connect(s1, "output", s2, "input")
    # s2 must see s1's postprocess write before its own postprocess
    assert dispel4py.run(graph, {prod: 3}).outputs == {s2.id: {"output": [6]}}


def test_fan_out_gives_each_branch_its_own_copy(fresh_ids):
    class Mutate(IterativePE):
        def _process(self, data):
            data.append("x")
            return data

    class Emit(ProducerPE):
        def _process(self, inputs):
            return [1]

    graph = WorkflowGraph()
    src, m1, m2 = Emit(), Mutate(), Mutate()
    graph.connect(src, "output", m1, "input")
    graph.connect(src, "output", m2, "input")
    out = dispel4py.run(graph).outputs
    assert out[m1.id]["output"] == [[1, "x"]]
    assert out[m2.id]["output"] == [[1, "x"]]


def test_preprocess_called_once_per_instance_before_process(fresh_ids):
    class Pre(IterativePE):
        def _preprocess(self):
            self.ready = True

        def _process(self, data):
            return (self.ready, data)

    graph = WorkflowGraph()
    prod, pre = t.TestProducer(), Pre()
    graph.connect(prod, "output", pre, "input")
    assert dispel4py.run(graph, {prod: 2}).outputs == {pre.id: {"output": [(True, 1), (True, 2)]}}


class Boom(IterativePE):
    def _process(self, data):
        if data == 2:
            raise ValueError(f"cannot handle {data}")
        return data


def test_pe_exception_becomes_workflow_failed(fresh_ids):
    graph = WorkflowGraph()
    prod, boom = t.TestProducer(), Boom()
    graph.connect(prod, "output", boom, "input")
    with pytest.raises(dispel4py.WorkflowFailed) as info:
        dispel4py.run(graph, {prod: 3})
    err = info.value
    assert err.pe_id == "Boom1"
    assert err.instance == 1
    assert err.phase == "process"
    assert err.port == "input"
    assert err.item_repr == "2"
    assert isinstance(err.__cause__, ValueError)
    assert str(err.__cause__) == "cannot handle 2"
    assert "ValueError: cannot handle 2" in str(err)
    assert "Boom1" in str(err)
    assert isinstance(err, dispel4py.Dispel4PyError)


def test_exception_in_source_pe(fresh_ids):
    class BadSource(ProducerPE):
        def _process(self, inputs):
            raise KeyError("missing")

    graph = WorkflowGraph()
    graph.add(BadSource())
    with pytest.raises(dispel4py.WorkflowFailed) as info:
        dispel4py.run(graph)
    assert info.value.pe_id == "BadSource0"
    assert info.value.phase == "process"
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize("phase", ["preprocess", "postprocess"])
def test_exception_in_pre_and_postprocess(fresh_ids, phase):
    class Fails(ConsumerPE):
        def _preprocess(self):
            if phase == "preprocess":
                raise RuntimeError("pre")

        def _postprocess(self):
            if phase == "postprocess":
                raise RuntimeError("post")

    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", Fails(), "input")
    with pytest.raises(dispel4py.WorkflowFailed) as info:
        dispel4py.run(graph)
    assert info.value.phase == phase
    assert info.value.pe_id == "Fails1"
    assert info.value.item_repr is None
    assert isinstance(info.value.__cause__, RuntimeError)


def test_process_returning_a_non_dict_fails_clearly(fresh_ids):
    class Wrong(t.TestOneInOneOut):
        def process(self, inputs):
            return 5

    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", Wrong(), "input")
    with pytest.raises(dispel4py.WorkflowFailed, match="Wrong1"):
        dispel4py.run(graph)


def test_process_returning_an_undeclared_output_fails_clearly(fresh_ids):
    class Wrong(t.TestOneInOneOut):
        def process(self, inputs):
            return {"outptu": 5}

    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", Wrong(), "input")
    with pytest.raises(dispel4py.WorkflowFailed, match="outptu"):
        dispel4py.run(graph)


# -- bounded memory ----------------------------------------------------------------------------
# Two runs in one process, of SMALL then LARGE items: the peak RSS after each. Items held
# (a queue that grows, a per-item leak) show as growth between the two peaks: 2 M more ints
# held take >= 72 MB; a bounded run adds nothing. A slope, not a machine-dependent ceiling.
# SMALL only has to reach the steady state (every buffer full): 200 k items do, and keep the
# 2 M difference of 1 M -> 3 M at 2.4 M items instead of 4 M.
SMALL, LARGE = 200_000, 2_200_000
_BIG_RUN = textwrap.dedent(
    """
    import resource, sys
    from dispel4py.api import run_in_place
    from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
    from dispel4py.workflow_graph import WorkflowGraph

    class Numbers(ProducerPE):
        def __init__(self, n):
            ProducerPE.__init__(self)
            self.n = n

        def _process(self, inputs):
            for i in range(self.n):
                self.write("output", i)

    class Inc(IterativePE):
        def _process(self, x):
            return x + 1

    class Sink(ConsumerPE):
        def __init__(self):
            ConsumerPE.__init__(self)
            self.count = 0
            self.last = None

        def _process(self, x):
            self.count += 1
            self.last = x

    for n in map(int, sys.argv[1:]):
        graph = WorkflowGraph()
        inc, sink = Inc(), Sink()
        graph.connect(Numbers(n), "output", inc, "input")
        graph.connect(inc, "output", sink, "input")
        run_in_place(graph, None, "simple")  # dispel4py.run would leave sink (a copy ran) untouched
        print(sink.count, sink.last, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_millions_of_items_in_bounded_memory(tmp_path):
    script = tmp_path / "big.py"
    script.write_text(_BIG_RUN)
    done = subprocess.run(
        [sys.executable, str(script), str(SMALL), str(LARGE)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (count1, last1, peak1), (count2, last2, peak2) = (line.split() for line in done.stdout.splitlines())
    assert (int(count1), int(last1), int(count2), int(last2)) == (SMALL, SMALL, LARGE, LARGE)
    grown_mb = (int(peak2) - int(peak1)) / 1024
    assert grown_mb < 25, f"the peak RSS grew by {grown_mb:.0f} MB for {LARGE - SMALL} more items"


def test_word_count_prints_plain_words(run_cli, example_seed):
    """The example's words are plain ``str``: the Outputs line shows 'Lecture', never
    np.str_('Lecture')."""
    done = run_cli("simple", EXAMPLES + "word_count", "-i", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Outputs: {'WordCounter1': {'output': [['"), done.stdout
    assert "np." not in done.stdout, done.stdout
