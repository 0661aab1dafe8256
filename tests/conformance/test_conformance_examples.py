"""Every example of dispel4py.examples.graph_testing on every mapping (spec §6).

Deterministic examples must give the documented outputs on ``simple`` and the same
outputs, as multisets, on every other mapping. Examples with random words are checked
through invariants that only hold if group-by sends each word to exactly one instance.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import pytest
from conformance_graphs import example
from conformance_support import canonical, multiset, run_on

pytestmark = pytest.mark.timeout(60)

N = 12
R = list(range(1, N + 1))
K = 3  # large_teecopy: items per producer call (sys.argv[4], see EXAMPLE_ARGV)

# example -> (inputs, outputs of simple; ids as in a fresh interpreter)
DETERMINISTIC: dict[str, tuple[dict[str, Any], dict[str, dict[str, list[Any]]]]] = {
    "pipeline_test": ({"TestProducer": N}, {"TestOneInOneOut5": {"output": R}}),
    "parallel_pipeline": (
        {"TestProducer": N},
        {"TestOneInOneOut2": {"output": R}, "TestOneInOneOut3": {"output": R}},
    ),
    "partition_parallel_pipeline": (
        {"TestProducer": N},
        {"TestOneInOneOut2": {"output": R}, "TestOneInOneOut3": {"output": R}},
    ),
    "pipeline_composite": (
        {"TestProducer": N},
        {"PE_subtract3": {"output": [(4 * (x + 2)) / 2 - 1 for x in R]}},
    ),
    "teecopy": (
        {"TestProducer": N},
        {"TestOneInOneOut1": {"output": R}, "TestOneInOneOut2": {"output": R}},
    ),
    "large_teecopy": (
        {"NumberProducer": N},
        {
            "TestOneInOneOut2": {"output": [f"{c}:{i}" for c in R for i in range(K)]},
            "TestOneInOneOut3": {"output": [f"{c}:{i}" for c in R for i in range(K)]},
        },
    ),
    "producer_tee": (
        {"TestProducer": N},
        {"TestOneInOneOut2": {"output": R}, "TestOneInOneOut3": {"output": R}},
    ),
    "split_merge": ({"TestProducer": N}, {"TestTwoInOneOut3": {"output": [str(x) for x in R] * 2}}),
    "unconnected_pipeline": (
        {"TestProducer0": N, "TestProducer6": N},
        {"TestOneInOneOut5": {"output": R}, "TestOneInOneOut11": {"output": R}},
    ),
    # numprocesses=2 with grouping 'all': each of the two instances gets every item, on
    # every mapping (simple hosts both instances too, so all mappings agree)
    "grouping_onetoall": ({"TestProducer": N}, {"TestOneInOneOut1": {"output": R + R}}),
    # 'global': every item reaches the first of the 5 instances only
    "grouping_alltoone": ({"TestProducer": N}, {"TestOneInOneOut2": {"output": R}}),
}

_reference: dict[str, dict[str, dict[str, list[Any]]]] = {}


def simple_outputs(name: str) -> dict[str, dict[str, list[Any]]]:
    """The outputs of ``simple`` for an example (computed once per session)."""
    if name not in _reference:
        _reference[name] = run_on(("simple", {}), example(name), DETERMINISTIC[name][0])
    return _reference[name]


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_simple_gives_the_documented_outputs(name):
    assert multiset(simple_outputs(name)) == multiset(DETERMINISTIC[name][1])


@pytest.mark.parametrize("name", ["pipeline_test", "pipeline_composite", "split_merge", "teecopy"])
def test_simple_keeps_the_order_of_single_instance_pipelines(name):
    """One instance per PE on ``simple``: items come out in the order they went in."""
    assert canonical(simple_outputs(name)) == canonical(DETERMINISTIC[name][1])


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_example_gives_the_outputs_of_simple(name, mapping_entry):
    inputs, expected = DETERMINISTIC[name]
    outputs = run_on(mapping_entry, example(name), inputs)
    assert multiset(outputs) == multiset(simple_outputs(name))
    assert multiset(outputs) == multiset(expected)


@pytest.mark.parametrize("entry", [("simple", {}), ("multi", {"num": 2})], ids=["simple", "multi-num=2"])
def test_delayed_pipeline_waits_for_a_slow_pe(entry, caplog):
    """A PE taking 1 s per item is never cut off (no idle timeouts, spec §4.5 B4)."""
    caplog.set_level(logging.INFO, logger="dispel4py")
    outputs = run_on(entry, example("delayed_pipeline"), {"TestProducer": 2})
    assert multiset(outputs) == multiset({"TestDelayOneInOneOut2": {"output": [1, 2]}})
    timing = [r.getMessage() for r in caplog.records if "Average processing time" in r.getMessage()]
    assert timing, "ProcessTimingPE logged no average from postprocess"


# -- random examples ---------------------------------------------------------------------
WORDS = {"Dispel4Py", "Tutorial", "My", "Lovely", "Modelling", "Lecture", "Workflow"}
M = 40

# example -> (input key, counter PE id, relation of the number of outputs to M)
RANDOM = {
    "word_count": ("RandomWordProducer", "WordCounter1", "=="),
    "word_count_filter": ("RandomWordProducer", "WordCounter2", "<="),
    "group_by": ("RandomWordProducer", "WordCounter4", "=="),
    "group_by_stateful": ("RandomWordProducer", "WordCounter4", "=="),
    "grouping_split_merge": ("RandomWordProducer", "WordCounter3", "<=2"),
}


def assert_counts_are_consecutive(pairs: list[Any]) -> None:
    """Each word's counts are exactly 1..k, each once: one instance counted each word."""
    counts: dict[str, list[int]] = defaultdict(list)
    for word, count in pairs:
        assert word in WORDS, f"unexpected word {word!r}"
        counts[word].append(count)
    for word, seen in counts.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), (
            f"counts of {word!r} are {sorted(seen)}: the word was counted by several instances"
        )


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_example_counts_each_word_on_one_instance(name, mapping_entry, example_seed):
    source, counter, relation = RANDOM[name]
    outputs = run_on(mapping_entry, example(name), {source: M})
    assert set(outputs) == {counter}, f"outputs of unexpected PEs: {sorted(outputs)}"
    pairs = canonical(outputs[counter]["output"])
    assert all(isinstance(p, list) and len(p) == 2 for p in pairs), pairs[:5]
    if relation == "==":
        assert len(pairs) == M
    elif relation == "<=":
        assert 0 < len(pairs) <= M
    else:
        assert 0 < len(pairs) <= 2 * M
    assert_counts_are_consecutive(pairs)
