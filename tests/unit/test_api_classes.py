"""The PE classes of dispel4py.core and dispel4py.base (the compatibility surface)."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest

import dispel4py
from dispel4py.base import BasePE, ConsumerPE, IterativePE, ProducerPE, SimpleFunctionPE
from dispel4py.core import DESCRIPTION, GROUPING, META, NAME, TYPE, WRITER, GenericPE
from dispel4py.examples.graph_testing import testing_PEs as t
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)


class Filter(IterativePE):
    """A module-level PE (picklable) that users configure with attributes after construction."""

    def __init__(self):
        IterativePE.__init__(self)
        self.seen = 0

    def _process(self, data):
        self.seen += 1
        if data in getattr(self, "columns", []):
            return data
        return None


class LoggingPE(IterativePE):
    def _process(self, data):
        self.log(f"got {data}")
        return data


class WritesUnknown(IterativePE):
    def _process(self, data):
        self.write("ouptut", data)


def square(x, offset=0):
    return x * x + offset


# -- constants and GenericPE --------------------------------------------------------------
def test_connection_dict_keys():
    assert (NAME, TYPE, DESCRIPTION, META, GROUPING, WRITER) == (
        "name",
        "type",
        "descr",
        "meta",
        "grouping",
        "writer",
    )


def test_generic_pe_constructor_attributes():
    pe = GenericPE()
    assert pe.inputconnections == {}
    assert pe.outputconnections == {}
    assert pe.numprocesses == 1
    assert pe.name == "GenericPE"
    assert pe.id.startswith("GenericPE") and len(pe.id) > len("GenericPE")
    assert pe.wrapper == "simple"
    assert isinstance(pe.pickleIgnore, list)
    assert GenericPE(numprocesses=4).numprocesses == 4
    assert GenericPE(3).numprocesses == 3


def test_subclass_name_is_class_name_and_ids_differ():
    a, b = t.TestOneInOneOut(), t.TestOneInOneOut()
    assert a.name == "TestOneInOneOut"
    assert a.id != b.id


def test_add_input_and_output_dicts():
    pe = GenericPE()
    pe._add_input("plain")
    pe._add_input("grouped", grouping=[0, 1])
    pe._add_input("typed", tuple_type=["word"])
    pe._add_input("falsy", grouping=None, tuple_type=[])
    pe._add_output("out")
    pe._add_output("typed_out", tuple_type=["number"])
    assert pe.inputconnections == {
        "plain": {"name": "plain"},
        "grouped": {"name": "grouped", "grouping": [0, 1]},
        "typed": {"name": "typed", "type": ["word"]},
        "falsy": {"name": "falsy"},
    }
    assert pe.outputconnections == {
        "out": {"name": "out"},
        "typed_out": {"name": "typed_out", "type": ["number"]},
    }


def test_add_input_replaces_an_existing_declaration():
    pe = GenericPE()
    pe._add_input("input", grouping="all")
    pe._add_input("input")
    assert pe.inputconnections["input"] == {"name": "input"}


def test_connection_dicts_are_mutable_by_user_code():
    pe = t.TestOneInOneOut()
    pe.inputconnections["input"]["grouping"] = "global"
    assert pe.inputconnections["input"][GROUPING] == "global"


def test_get_output_types():
    assert t.TestProducer(2).get_output_types() == {"output0": ["number"], "output1": ["number"]}
    assert GenericPE().get_output_types() == {}


def test_get_output_types_key_error_names_pe_and_output():
    pe = t.TestOneInOneOut()
    with pytest.raises(KeyError) as info:
        pe.get_output_types()
    assert info.value.args[0] == f"{pe.id}: No output type defined for 'output'"


def test_set_input_types_is_a_no_op_hook():
    pe = GenericPE()
    assert pe.set_input_types({"input": ["x"]}) is None


def test_default_hooks():
    pe = GenericPE()
    assert pe.process({"x": 1}) is None
    assert pe._process({"x": 1}) is None
    assert pe.preprocess() is None
    assert pe.postprocess() is None


def test_process_delegates_to_underscore_process():
    class P(GenericPE):
        def _process(self, data):
            return {"output": data}

    assert P().process({"input": 5}) == {"output": {"input": 5}}


def test_pre_and_postprocess_call_underscore_versions():
    calls = []

    class P(GenericPE):
        def _preprocess(self):
            calls.append("pre")

        def _postprocess(self):
            calls.append("post")

    pe = P()
    pe.preprocess()
    pe.postprocess()
    assert calls == ["pre", "post"]


# -- write ----------------------------------------------------------------------------
def test_write_to_unknown_output_names_output_and_lists_outputs():
    pe = t.TestProducer(2)
    with pytest.raises(KeyError) as info:
        pe.write("nope", 1)
    message = info.value.args[0]
    assert "Can't write data: Unknown output connection nope" in message
    assert "TestProducer" in message
    assert "output0" in message and "output1" in message


def test_write_to_unknown_output_during_a_run_fails_the_run():
    graph = WorkflowGraph()
    prod, bad = t.TestProducer(), WritesUnknown()
    graph.connect(prod, "output", bad, "input")
    with pytest.raises(dispel4py.WorkflowFailed) as info:
        dispel4py.run(graph, {prod: 1})
    assert info.value.pe_id == bad.id
    assert isinstance(info.value.__cause__, KeyError)
    assert "ouptut" in str(info.value)
    assert "outputs are: output" in str(info.value)


def test_write_uses_the_installed_writer():
    class Recorder:
        def __init__(self):
            self.items = []

        def write(self, data):
            self.items.append(data)

    pe = t.TestOneInOneOutWriter()
    recorder = Recorder()
    pe.outputconnections["output"][WRITER] = recorder
    pe.process({"input": 7})
    pe.write("output", 8)
    assert recorder.items == [7, 8]


# -- base classes ---------------------------------------------------------------------
def test_base_pe_ports():
    pe = BasePE(inputs=["a"], outputs=["b", "c"], num_inputs=2, num_outputs=1)
    assert list(pe.inputconnections) == ["input0", "input1", "a"]
    assert list(pe.outputconnections) == ["output0", "b", "c"]
    assert BasePE.INPUT_NAME == "input" and BasePE.OUTPUT_NAME == "output"
    assert BasePE().inputconnections == {} and BasePE().outputconnections == {}


def test_iterative_pe():
    pe = IterativePE()
    assert list(pe.inputconnections) == ["input"]
    assert list(pe.outputconnections) == ["output"]
    assert pe.process({"input": 3}) is None
    sq = t.SquareIterative()
    assert sq.process({"input": 3}) == {"output": 9}
    assert sq.process({"input": 0}) == {"output": 0}


def test_iterative_pe_none_result_emits_nothing():
    class Drop(IterativePE):
        def _process(self, data):
            return None

    assert Drop().process({"input": 1}) is None


def test_iterative_pe_list_result_is_one_item():
    class Pair(IterativePE):
        def _process(self, data):
            return [data, data]

    assert Pair().process({"input": 2}) == {"output": [2, 2]}


def test_producer_pe_gets_the_raw_inputs_dict():
    received = []

    class P(ProducerPE):
        def _process(self, inputs):
            received.append(inputs)
            return len(received)

    pe = P()
    assert pe.inputconnections == {}
    assert list(pe.outputconnections) == ["output"]
    assert pe.process({}) == {"output": 1}
    assert pe.process({"input": "file.txt"}) == {"output": 2}
    assert received == [{}, {"input": "file.txt"}]
    assert ProducerPE().process({}) is None


def test_consumer_pe_gets_the_item_and_returns_none():
    received = []

    class C(ConsumerPE):
        def _process(self, data):
            received.append(data)
            return "ignored"

    pe = C()
    assert list(pe.inputconnections) == ["input"]
    assert pe.outputconnections == {}
    assert pe.process({"input": 4}) is None
    assert received == [4]


def test_simple_function_pe():
    pe = SimpleFunctionPE(square, {"offset": 1})
    assert pe.name == "PE_square"
    assert pe.process({"input": 3}) == {"output": 10}
    assert SimpleFunctionPE(square).process({"input": 3}) == {"output": 9}
    empty = SimpleFunctionPE()
    assert empty.name == "SimpleFunctionPE"
    assert empty.process({"input": 3}) is None
    assert isinstance(pe, IterativePE)


def test_iterative_pe_constructor_takes_no_arguments():
    with pytest.raises(TypeError):
        IterativePE(2)


# -- log --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls", [GenericPE, IterativePE, ProducerPE, ConsumerPE, BasePE, SimpleFunctionPE, t.TestProducer]
)
def test_every_pe_has_log(cls, caplog):
    pe = cls()
    pe.id = "X7"
    pe.rank = 2
    caplog.set_level(logging.INFO, logger="dispel4py.pe")
    pe.log("hello")
    (record,) = [r for r in caplog.records if r.name.startswith("dispel4py.pe")]
    assert record.name == "dispel4py.pe.X7"
    assert record.getMessage() == "X7 (rank 2): hello"
    assert record.levelno == logging.INFO


def test_log_without_rank(caplog):
    pe = GenericPE()
    pe.id = "Lonely0"
    caplog.set_level(logging.INFO, logger="dispel4py.pe")
    pe.log("msg")
    assert [r.getMessage() for r in caplog.records if r.name == "dispel4py.pe.Lonely0"] == ["Lonely0: msg"]


def test_log_during_a_run_names_id_and_rank(caplog, fresh_ids):
    graph = WorkflowGraph()
    prod, logger_pe = t.TestProducer(), LoggingPE()
    graph.connect(prod, "output", logger_pe, "input")
    caplog.set_level(logging.INFO, logger="dispel4py.pe")
    result = dispel4py.run(graph, {prod: 2})
    assert result.outputs == {"LoggingPE1": {"output": [1, 2]}}
    messages = [r.getMessage() for r in caplog.records if r.name == "dispel4py.pe.LoggingPE1"]
    assert messages == ["LoggingPE1 (rank 1): got 1", "LoggingPE1 (rank 1): got 2"]


# -- copying ------------------------------------------------------------------------------
def _configured_filter() -> Filter:
    pe = Filter()
    pe.columns = ["a", "b"]
    pe.name = "filt"
    pe.numprocesses = 3
    pe.inputconnections["input"][GROUPING] = [0]
    pe.rank = 4
    return pe


def _assert_same_filter(copy_: Filter, original: Filter) -> None:
    assert copy_ is not original
    assert copy_.columns == ["a", "b"]
    assert copy_.name == "filt" and copy_.id == original.id
    assert copy_.numprocesses == 3 and copy_.rank == 4
    assert copy_.inputconnections == {"input": {"name": "input", "grouping": [0]}}
    assert copy_.process({"input": "a"}) == {"output": "a"}
    assert copy_.process({"input": "z"}) is None


def test_pe_with_user_attributes_survives_deepcopy():
    pe = _configured_filter()
    clone = copy.deepcopy(pe)
    _assert_same_filter(clone, pe)
    clone.columns.append("c")
    assert pe.columns == ["a", "b"]


def test_pe_with_user_attributes_survives_pickle():
    pe = _configured_filter()
    _assert_same_filter(pickle.loads(pickle.dumps(pe)), pe)


def test_pe_still_picklable_after_a_run(fresh_ids):
    graph = WorkflowGraph()
    prod, filt = t.TestProducer(), _configured_filter()
    filt.columns = [1, 3]
    filt.numprocesses = 1
    del filt.inputconnections["input"][GROUPING]
    graph.connect(prod, "output", filt, "input")
    assert dispel4py.run(graph, {prod: 3}).outputs == {"filt1": {"output": [1, 3]}}
    clone = pickle.loads(pickle.dumps(filt))
    assert clone.columns == [1, 3]
    assert clone.seen == filt.seen
    assert pickle.loads(pickle.dumps(graph)) is not None


def test_logging_survives_pickle(caplog):
    pe = pickle.loads(pickle.dumps(_configured_filter()))
    caplog.set_level(logging.INFO, logger="dispel4py.pe")
    pe.log("after pickle")
    assert f"{pe.id} (rank 4): after pickle" in [r.getMessage() for r in caplog.records]


def test_repr_names_the_id():
    pe = t.TestProducer()
    pe.id = "TestProducer0"
    assert "TestProducer0" in repr(pe)
