"""The original's ``dispel4py.new.processor`` helpers, used as user scripts use them."""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest

from dispel4py.errors import GraphError, InputError
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.new import processor
from dispel4py.new.processor import (
    STATUS,
    STATUS_ACTIVE,
    STATUS_INACTIVE,
    STATUS_TERMINATED,
    AllToOneCommunication,
    GenericWrapper,
    GroupByCommunication,
    OneToAllCommunication,
    ShuffleCommunication,
    assign_and_connect,
    check_commandline_argument,
    create_arg_parser,
    create_inputs,
    get_inputs,
    get_inputs_from_arguments,
    get_partitions,
    load_graph_and_inputs,
    parse_common_args,
    simple_logger,
)
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)

EXAMPLES = "dispel4py.examples.graph_testing."


def namespace(**kwargs) -> argparse.Namespace:
    defaults = {"module": EXAMPLES + "pipeline_test", "attr": None, "file": None, "data": None, "iter": 1}
    return argparse.Namespace(**{**defaults, **kwargs})


def test_all_names_exist():
    assert len(set(processor.__all__)) == len(processor.__all__)
    for name in processor.__all__:
        assert hasattr(processor, name), name
    assert (STATUS_ACTIVE, STATUS_INACTIVE, STATUS_TERMINATED) == (10, 11, 12)
    assert STATUS[STATUS_TERMINATED] == "TERMINATED"
    assert processor.config["multi"] == "dispel4py.new.multi_process"


# -- a script that loads a workflow and its inputs the original's way --------------------------------
SCRIPT = """
    import argparse
    from dispel4py.new.processor import load_graph_and_inputs
    from dispel4py.new import simple_process

    args = argparse.Namespace(module={module!r}, attr=None, file=None, data={data!r}, iter=3)
    graph, inputs = load_graph_and_inputs(args)
    print(inputs)
    simple_process.process(graph, inputs)
"""


@pytest.mark.parametrize(
    ("data", "inputs"),
    [(None, {"TestProducer0": 3}), ('{"TestProducer": 2}', {"TestProducer0": 2})],
    ids=["iterations", "names"],
)
def test_load_graph_and_inputs_in_a_script(tmp_path, data, inputs):
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(SCRIPT.format(module=EXAMPLES + "pipeline_test", data=data)))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    first, last = done.stdout.splitlines()[0], done.stdout.splitlines()[-1]
    assert ast.literal_eval(first) == inputs
    expected = list(range(1, next(iter(inputs.values())) + 1))
    assert last == f"Outputs: {{'TestOneInOneOut5': {{'output': {expected}}}}}"


def test_create_inputs_from_a_file(tmp_path, fresh_ids):
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", t.TestOneInOneOut(), "input")
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"TestProducer": [{}, {}]}))
    assert create_inputs(namespace(file=str(path)), graph) == {"TestProducer0": [{}, {}]}
    assert create_inputs(namespace(iter=4), graph) == {"TestProducer0": 4}


def test_get_inputs_looks_up_object_name_then_id(fresh_ids):
    pe = t.TestProducer()
    WorkflowGraph().add(pe)
    assert get_inputs(pe, {pe: 1}) == 1
    assert get_inputs(pe, {"TestProducer": 2}) == 2
    assert get_inputs(pe, {"TestProducer0": 3}) == 3
    assert get_inputs(pe, {}) is None


def test_argument_helpers():
    parser = create_arg_parser()
    args = parser.parse_args(["simple", "wf.py", "-i", "3"])
    assert (args.target, args.module, args.iter) == ("simple", "wf.py", 3)
    args, remaining = parse_common_args(["multi", "wf.py", "-i", "2", "-n", "4"])
    assert args.iter == 2
    assert remaining == ["-n", "4"]
    assert get_inputs_from_arguments(namespace(data='{"a": 1}')) == {"a": 1}
    assert get_inputs_from_arguments(namespace()) == {}
    assert check_commandline_argument(sys.argv[0][:3])
    assert not check_commandline_argument("--no-such-argument-anywhere")


# -- bad input -------------------------------------------------------------------------------------------
def test_load_graph_and_inputs_unknown_module_raises():
    with pytest.raises(GraphError, match="workflow 'no_such_wf' not found"):
        load_graph_and_inputs(namespace(module="no_such_wf"))


def test_inputs_file_missing_raises(tmp_path):
    with pytest.raises(InputError, match=r"input file '.*missing.json' \(-f\) does not exist"):
        get_inputs_from_arguments(namespace(file=str(tmp_path / "missing.json")))


def test_inputs_for_an_unknown_pe_raise(fresh_ids):
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", t.TestOneInOneOut(), "input")
    with pytest.raises(InputError, match="did you mean 'TestProducer'"):
        create_inputs(namespace(data='{"TestProducr": 1}'), graph)


# -- the original's layout ----------------------------------------------------------------------------------
def test_assign_and_connect_grouping_alltoone(fresh_ids):
    graph = WorkflowGraph()
    prod, c1, c2 = t.TestProducer(), t.TestOneInOneOut(), t.TestOneInOneOut()
    c1.numprocesses = 5
    c2.numprocesses = 5
    c2.inputconnections["input"]["grouping"] = "global"
    graph.connect(prod, "output", c1, "input")
    graph.connect(c1, "output", c2, "input")
    result = assign_and_connect(graph, 11)
    assert result is not None
    processes, inputs, outputs = result
    assert processes == {
        "TestProducer0": range(0, 1),
        "TestOneInOneOut1": range(1, 6),
        "TestOneInOneOut2": range(6, 11),
    }
    assert inputs[6] == {"input": [1, 2, 3, 4, 5]}
    assert inputs[0] == {}
    ((port, comm),) = outputs[3]["output"]
    assert port == "input" and isinstance(comm, AllToOneCommunication)
    assert comm.get_destination({"input": 1}) == [6]


def test_assign_and_connect_scales_pes_left_at_one(fresh_ids):
    graph = WorkflowGraph()
    prod = t.TestProducer()
    previous = prod
    for _ in range(5):
        step = t.TestOneInOneOut()
        graph.connect(previous, "output", step, "input")
        previous = step
    result = assign_and_connect(graph, 12)
    assert result is not None
    assert [len(r) for r in result[0].values()] == [1, 2, 2, 2, 2, 2]  # spec §2.3, pipeline_test -n 12


def test_assign_and_connect_each_instance_has_its_own_sources(fresh_ids):
    """Bug B1 of the original: two edges into one input of a 2-instance PE."""
    graph = WorkflowGraph()
    a, b, merge = t.TestProducer(), t.TestProducer(), t.TestOneInOneOut()
    merge.numprocesses = 2
    graph.connect(a, "output", merge, "input")
    graph.connect(b, "output", merge, "input")
    result = assign_and_connect(graph, 4)
    assert result is not None
    processes, inputs, _ = result
    first, second = processes["TestOneInOneOut1"]  # ranks 1, 2; the producers are 0 and 3
    assert inputs[first] == {"input": [0, 3]} and inputs[second] == {"input": [0, 3]}
    assert inputs[first]["input"] is not inputs[second]["input"]


def test_assign_and_connect_too_small_returns_none_with_a_warning(fresh_ids, caplog):
    graph = WorkflowGraph()
    graph.connect(t.TestProducer(), "output", t.TestOneInOneOut(), "input")
    graph.connect(t.TestProducer(), "output", t.TestOneInOneOut(), "input")
    assert assign_and_connect(graph, 3) is None
    assert "Graph is larger than job size: 4 > 3." in caplog.text


def test_get_partitions_defaults_to_sources_and_the_rest(fresh_ids):
    graph = WorkflowGraph()
    prod, copy = t.TestProducer(), t.TestOneInOneOut()
    graph.connect(prod, "output", copy, "input")
    assert get_partitions(graph) == [[prod], [copy]]
    assert graph.partitions == [[prod], [copy]]


# -- communications -----------------------------------------------------------------------------------------
def test_shuffle_starts_at_the_source_position():
    comm = ShuffleCommunication(1, [0, 1], [5, 6, 7])
    assert [comm.get_destination(None)[0] for _ in range(4)] == [6, 7, 5, 6]
    assert comm.name is None


def test_one_to_all_and_all_to_one():
    assert OneToAllCommunication([3, 4]).get_destination({"input": 1}) == [3, 4]
    assert OneToAllCommunication([3, 4]).name == "all"
    assert AllToOneCommunication([3, 4]).get_destination({"input": 1}) == [3]


def test_group_by_is_the_same_in_every_process():
    code = (
        "from dispel4py.new.processor import GroupByCommunication as G\n"
        "c = G(list(range(7)), 'input', [0])\n"
        "print([c.get_destination({'input': [w, 1]})[0] for w in ('alpha', 'beta', 'gamma', 'delta')])\n"
    )
    seen = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        seen.add(done.stdout)
    assert len(seen) == 1
    comm = GroupByCommunication([0, 1, 2], "input", [0])
    assert comm.get_destination({"input": ["x"]}) == comm.get_destination({"input": ("x", 9)})
    assert comm.name == [0]


# -- GenericWrapper: the original's per-instance driver, for custom mappings ------------------------------
class ListWrapper(GenericWrapper):
    def __init__(self, pe):
        super().__init__(pe)
        self.written, self.terminated = [], False

    def _write(self, name, data):
        self.written.append((name, data))

    def _terminate(self):
        self.terminated = True


def test_generic_wrapper_runs_provided_iterations(fresh_ids, caplog):
    pe = t.TestProducer()
    WorkflowGraph().add(pe)
    pe.rank = 0
    wrapper = ListWrapper(pe)
    wrapper.provided_inputs = 3
    with caplog.at_level("INFO", logger="dispel4py.pe"):
        wrapper.process()
    assert wrapper.written == [("output", 1), ("output", 2), ("output", 3)]
    assert wrapper.terminated
    assert "TestProducer0 (rank 0): Processed 3 iterations." in caplog.text


def test_generic_wrapper_write_goes_through_the_wrapper(fresh_ids):
    writer = t.TestOneInOneOutWriter()
    wrapper = ListWrapper(writer)
    wrapper.provided_inputs = [{"input": 7}]
    wrapper.sources = {"input": [0, 1]}
    wrapper.process()
    assert wrapper.written == [("output", 7)]
    assert wrapper._num_sources == 2


def test_generic_wrapper_without_inputs_says_what_to_implement(fresh_ids):
    wrapper = ListWrapper(t.TestOneInOneOut())
    with pytest.raises(NotImplementedError, match=r"ListWrapper\._read"):
        wrapper.process()


def test_simple_logger_is_the_pe_log(fresh_ids, caplog):
    pe = t.TestOneInOneOut()
    WorkflowGraph().add(pe)
    pe.rank = 3
    with caplog.at_level("INFO", logger="dispel4py.pe"):
        simple_logger(pe, "hello")
    assert "TestOneInOneOut0 (rank 3): hello" in caplog.text
