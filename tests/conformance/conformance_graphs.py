"""Graph factories of the conformance suite.

Every factory builds a fresh graph (PE objects keep state between runs). Factories are
module-level functions of an importable module, or ``functools.partial`` of them, so that
out-of-process runners can pickle them. PE names are unique within a graph so that tests
can look outputs up by name (``conformance_support.items_of``).
"""

from __future__ import annotations

import functools
from typing import Any

from conformance_pes import (
    ADD_TEN,
    TRIPLE,
    AppendToFile,
    Blobs,
    Double,
    EchoSource,
    Identity,
    KeyedItems,
    KeyRecorder,
    Lifecycle,
    Mutator,
    Numbers,
    NumbersThenEnd,
    Observer,
    Pairs,
    Rekey,
    Relay,
    Splitter,
    Summer,
    TwoInputs,
    Values,
    add_one,
    as_list,
    describe_blob,
    named,
    pair_to_dict,
    scale,
    type_and_value,
)
from conformance_support import load_example

from dispel4py.base import CompositePE, SimpleFunctionPE, create_iterative_chain
from dispel4py.core import GenericPE
from dispel4py.workflow_graph import WorkflowGraph


def example(name: str):
    """Factory of an example workflow of ``dispel4py.examples.graph_testing``."""
    return functools.partial(load_example, name)


def pipeline(length: int = 3) -> WorkflowGraph:
    """source -> length x Identity -> Double (named 'last')."""
    graph = WorkflowGraph()
    previous: GenericPE = named(Numbers(), "source")
    for i in range(length):
        pe = named(Identity(), f"stage_{chr(ord('a') + i)}")
        graph.connect(previous, "output", pe, "input")
        previous = pe
    graph.connect(previous, "output", named(Double(), "last"), "input")
    return graph


def fan_out() -> WorkflowGraph:
    """One output connected to three PEs."""
    graph = WorkflowGraph()
    source = named(Numbers(), "source")
    for name in ("sink_a", "sink_b", "sink_c"):
        graph.connect(source, "output", named(Identity(), name), "input")
    return graph


def fan_in_sources() -> WorkflowGraph:
    """Three sources (offsets 0, 100, 200) into one input of one PE."""
    graph = WorkflowGraph()
    sink = named(Identity(), "sink")
    for name, offset in (("p_a", 0), ("p_b", 100), ("p_c", 200)):
        graph.connect(named(Numbers(offset), name), "output", sink, "input")
    return graph


def fan_in_multi_instance(grouping: Any = None) -> WorkflowGraph:
    """Two edges into the same input of a 3-instance PE (the original hung here, B1)."""
    graph = WorkflowGraph()
    source = named(KeyedItems(["a", "b", "c", "d", "e"]), "source")
    left, right = named(Identity(), "left"), named(Identity(), "right")
    merge = named(Observer(grouping=grouping, numprocesses=3), "merge")
    graph.connect(source, "output", left, "input")
    graph.connect(source, "output", right, "input")
    graph.connect(left, "output", merge, "input")
    graph.connect(right, "output", merge, "input")
    return graph


def two_inputs() -> WorkflowGraph:
    """A PE with two inputs fed by two branches."""
    graph = WorkflowGraph()
    source = named(Numbers(), "source")
    to_left, to_right = named(Identity(), "to_left"), named(Double(), "to_right")
    both = named(TwoInputs(), "both")
    graph.connect(source, "output", to_left, "input")
    graph.connect(source, "output", to_right, "input")
    graph.connect(to_left, "output", both, "left")
    graph.connect(to_right, "output", both, "right")
    return graph


def observed(grouping: Any, numprocesses: int = 3, keys: list[Any] | None = None) -> WorkflowGraph:
    """A source (numbers, or keyed items) into an Observer with a grouping."""
    graph = WorkflowGraph()
    source = named(Numbers() if keys is None else KeyedItems(keys), "source")
    graph.connect(source, "output", named(Observer(grouping, numprocesses), "observer"), "input")
    return graph


def observed_dicts() -> WorkflowGraph:
    """Dict items grouped by the key 'k' into 3 instances."""
    graph = WorkflowGraph()
    source = named(KeyedItems(["x", "y", "z", "w"]), "source")
    to_dict = named(SimpleFunctionPE(pair_to_dict), "to_dict")
    graph.connect(source, "output", to_dict, "input")
    graph.connect(to_dict, "output", named(Observer(["k"], 3), "observer"), "input")
    return graph


def wide_chain(numprocesses: int = 5) -> WorkflowGraph:
    """Two PEs with more instances than any mapping entry has workers."""
    graph = WorkflowGraph()
    source = named(Numbers(), "source")
    middle = named(Identity(), "middle")
    middle.numprocesses = numprocesses
    graph.connect(source, "output", middle, "input")
    graph.connect(middle, "output", named(Observer(None, numprocesses), "observer"), "input")
    return graph


def iterative_chain() -> WorkflowGraph:
    """source -> create_iterative_chain([add_one, (scale, {'factor': 3})])."""
    graph = WorkflowGraph()
    chain = create_iterative_chain([add_one, (scale, {"factor": 3})])
    graph.connect(named(Numbers(), "source"), "output", chain, "input")
    return graph


def _build_inner(composite: CompositePE, factor: int) -> None:
    first = named(SimpleFunctionPE(add_one), "inner_add")
    second = named(SimpleFunctionPE(scale, {"factor": factor}), "inner_scale")
    composite.connect(first, "output", second, "input")
    composite._map_input("input", first, "input")
    composite._map_output("output", second, "output")


def composite_pe() -> WorkflowGraph:
    """source -> CompositePE(add_one -> scale x5) -> Identity 'after'."""
    graph = WorkflowGraph()
    composite = CompositePE(_build_inner, {"factor": 5})
    graph.connect(named(Numbers(), "source"), "output", composite, "input")
    graph.connect(composite, "output", named(Identity(), "after"), "input")
    return graph


def postprocess_sums(numprocesses: int = 3) -> WorkflowGraph:
    """Partial sums written in postprocess by 3 instances, then a global total."""
    graph = WorkflowGraph()
    partial = named(Summer(numprocesses), "partial")
    total = named(Summer(1, grouping="global"), "total")
    relay = named(Identity(), "partials")
    graph.connect(named(Numbers(), "source"), "output", partial, "input")
    graph.connect(partial, "output", relay, "input")
    graph.connect(partial, "output", total, "input")
    return graph


def splitting(copies: int = 4) -> WorkflowGraph:
    graph = WorkflowGraph()
    split = named(Splitter(copies), "split")
    graph.connect(named(Numbers(), "source"), "output", split, "input")
    graph.connect(split, "output", named(Identity(), "sink"), "input")
    return graph


def echo() -> WorkflowGraph:
    graph = WorkflowGraph()
    graph.connect(named(EchoSource(), "echo"), "output", named(Identity(), "sink"), "input")
    return graph


def two_roots() -> WorkflowGraph:
    """Two unconnected pipelines: root_a -> sink_a, root_b -> sink_b."""
    graph = WorkflowGraph()
    graph.connect(named(Numbers(), "root_a"), "output", named(Identity(), "sink_a"), "input")
    graph.connect(named(Numbers(100), "root_b"), "output", named(Identity(), "sink_b"), "input")
    return graph


def lifecycle(numprocesses: int = 3) -> WorkflowGraph:
    graph = WorkflowGraph()
    graph.connect(named(Numbers(), "source"), "output", named(Lifecycle(numprocesses), "life"), "input")
    return graph


def module_functions() -> WorkflowGraph:
    """SimpleFunctionPEs with a module-level lambda and a module-level closure."""
    graph = WorkflowGraph()
    triple = named(SimpleFunctionPE(TRIPLE), "triple")
    add_ten = named(SimpleFunctionPE(ADD_TEN), "add_ten")
    graph.connect(named(Numbers(), "source"), "output", triple, "input")
    graph.connect(triple, "output", add_ten, "input")
    return graph


def grouped_volume(numprocesses: int = 3) -> WorkflowGraph:
    """Many items through group-by and shuffle stages that cross workers both ways."""
    graph = WorkflowGraph()
    source = named(KeyedItems([f"key{i}" for i in range(17)]), "source")
    relay = named(Identity(), "relay")
    relay.numprocesses = numprocesses
    grouped = named(Observer([0], numprocesses), "grouped")
    graph.connect(source, "output", relay, "input")
    graph.connect(relay, "output", grouped, "input")
    graph.connect(grouped, "seen", named(Identity(), "after"), "input")
    return graph


def hash_stability(relays: int = 2, recorders: int = 3) -> WorkflowGraph:
    """Keys sent by several relay instances into a group-by on item[0].

    7 keys (odd) over 2 round-robin relays: every key passes through both relays.
    """
    keys = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]
    graph = WorkflowGraph()
    source = named(KeyedItems(keys), "source")
    relay = named(Relay(relays), "relay")
    graph.connect(source, "output", relay, "input")
    graph.connect(relay, "output", named(KeyRecorder(recorders), "recorder"), "input")
    return graph


def typed_items(values: list[Any]) -> WorkflowGraph:
    graph = WorkflowGraph()
    record = named(SimpleFunctionPE(type_and_value), "record")
    graph.connect(named(Values(values), "source"), "output", named(Identity(), "relay"), "input")
    graph.connect(named(Values(values), "raw"), "output", record, "input")
    return graph


def two_connections_between_two_pes() -> WorkflowGraph:
    """pairs.a -> both.left and pairs.b -> both.right; source.output -> twice.left/right."""
    graph = WorkflowGraph()
    pairs, both = named(Pairs(), "pairs"), named(TwoInputs(), "both")
    graph.connect(pairs, "a", both, "left")
    graph.connect(pairs, "b", both, "right")
    source, twice = named(Numbers(), "source"), named(TwoInputs(), "twice")
    graph.connect(source, "output", twice, "left")
    graph.connect(source, "output", twice, "right")
    return graph


def large_items(size: int) -> WorkflowGraph:
    graph = WorkflowGraph()
    relay = named(Identity(), "relay")
    graph.connect(named(Blobs(size), "source"), "output", relay, "input")
    graph.connect(relay, "output", named(SimpleFunctionPE(describe_blob), "describe"), "input")
    return graph


def fan_out_mutation() -> WorkflowGraph:
    """Lists fanned out to a PE that mutates them and to one that passes them on."""
    graph = WorkflowGraph()
    source = named(SimpleFunctionPE(as_list), "to_list")
    graph.connect(named(Numbers(), "numbers"), "output", source, "input")
    graph.connect(source, "output", named(Mutator(), "mutator"), "input")
    graph.connect(source, "output", named(Identity(), "bystander"), "input")
    return graph


def unscaled(attribute: str) -> WorkflowGraph:
    """An Observer marked ``single`` or ``stateful``: never more than one instance."""
    graph = WorkflowGraph()
    observer = named(Observer(None, 1), "observer")
    setattr(observer, attribute, True)
    spread = named(Identity(), "spread")
    graph.connect(named(Numbers(), "source"), "output", spread, "input")
    graph.connect(spread, "output", observer, "input")
    return graph


def regrouped(numprocesses: int = 3) -> WorkflowGraph:
    """Two group-by stages on different keys: traffic crosses workers in every direction."""
    graph = WorkflowGraph()
    source = named(KeyedItems([f"key{i}" for i in range(17)]), "source")
    first = named(Observer([0], numprocesses), "first")
    rekey = named(Rekey(), "rekey")
    rekey.numprocesses = numprocesses
    second = named(Observer([0], numprocesses), "second")
    graph.connect(source, "output", first, "input")
    graph.connect(first, "seen", rekey, "input")
    graph.connect(rekey, "output", second, "input")
    return graph


def source_postprocess_writes() -> WorkflowGraph:
    graph = WorkflowGraph()
    graph.connect(named(NumbersThenEnd(), "source"), "output", named(Identity(), "sink"), "input")
    return graph


def consumer_only(path: str) -> WorkflowGraph:
    graph = WorkflowGraph()
    graph.connect(named(Numbers(), "source"), "output", named(AppendToFile(path, 3), "append"), "input")
    return graph


def _build_outer(composite: CompositePE) -> None:
    inner = CompositePE(_build_inner, {"factor": 2})  # add_one -> scale x2
    chain = create_iterative_chain([(scale, {"factor": 10})], name_suffix="_outer")
    composite.connect(inner, "output", chain, "input")
    composite._map_input("input", inner, "input")
    composite._map_output("output", chain, "output")


def nested_composites() -> WorkflowGraph:
    """source -> Composite(Composite(add_one -> x2) -> chain(x10)) -> Identity 'after'."""
    graph = WorkflowGraph()
    outer = CompositePE(_build_outer)
    graph.connect(named(Numbers(), "source"), "output", outer, "input")
    graph.connect(outer, "output", named(Identity(), "after"), "input")
    return graph


def equal_keys_of_several_types() -> WorkflowGraph:
    """Keys that compare equal but differ in type: 3, numpy 3, 3.0; 'a' and numpy 'a'.

    numpy is imported here, not at the top: every spawned worker and MPI rank imports this
    module, and numpy would add about 0.1 s of CPU to each of them."""
    import numpy as np

    values = [(3, "int"), (np.int64(3), "numpy int"), (3.0, "float")]
    values += [("a", "str"), (np.str_("a"), "numpy str"), (7, "int"), (np.int32(7), "numpy int")]
    graph = WorkflowGraph()
    source = named(Values(values), "source")
    graph.connect(source, "output", named(Observer([0], 3), "observer"), "input")
    return graph
