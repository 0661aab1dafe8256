"""PE lifecycle on every mapping (spec §1.1): preprocess once per instance before any
process call, postprocess once per instance after all its inputs, postprocess writes
delivered downstream, ``self.log`` and ``self.rank`` usable in every hook."""

from __future__ import annotations

import functools
import logging
import re

import pytest
from conformance_graphs import (
    consumer_only,
    lifecycle,
    observed,
    pipeline,
    postprocess_sums,
    source_postprocess_writes,
    wide_chain,
)
from conformance_support import items_of, run_on, run_result_on

pytestmark = pytest.mark.timeout(60)

N = 15
R = list(range(1, N + 1))


def test_preprocess_before_process_and_postprocess_after_all_inputs(mapping_entry):
    outputs = run_on(mapping_entry, functools.partial(lifecycle, 3), {"source": N})
    records = items_of(outputs, "life")
    items = [r for r in records if r[0] == "item"]
    posts = [r for r in records if r[0] == "post"]
    assert sorted(r[4] for r in items) == R
    # every process call came after exactly one preprocess and before postprocess
    assert all(pre == 1 and post == 0 for _, _rank, pre, post, _x in items), items
    # one postprocess per instance, after its one preprocess and all of its items
    ranks = [rank for _, rank, _pre, _post, _n in posts]
    assert len(ranks) == 3 and len(set(ranks)) == 3, posts
    per_rank = {rank: 0 for rank in ranks}
    for _, rank, *_rest in items:
        per_rank[rank] += 1
    assert {rank: (pre, post, n) for _, rank, pre, post, n in posts} == {
        rank: (1, 1, per_rank[rank]) for rank in ranks
    }


def test_rank_is_an_instance_number_in_every_hook(mapping_entry):
    outputs = run_on(mapping_entry, functools.partial(lifecycle, 3), {"source": N})
    records = items_of(outputs, "life")
    assert all(isinstance(r[1], int) and not isinstance(r[1], bool) for r in records), records


def test_log_works_in_every_hook(in_process_entry, caplog):
    """``self.log`` reaches the driver's logging from preprocess, process and postprocess."""
    caplog.set_level(logging.INFO, logger="dispel4py")
    result = run_result_on(in_process_entry, functools.partial(lifecycle, 3), {"source": N})
    messages = [r.getMessage() for r in caplog.records if "lifecycle" in r.getMessage()]
    ranks = {s.instance for s in result.stats if s.pe_id == "life1"}
    assert len(ranks) == 3
    for phase in ("preprocess", "postprocess"):
        logged = sorted(int(m.rsplit("=", 1)[1]) for m in messages if f"lifecycle {phase}" in m)
        assert logged == sorted(ranks), (phase, messages)
    processed = [m for m in messages if "lifecycle process" in m]
    assert len(processed) == N
    # "<pe id> (rank <r>): <message>", as the original printed it
    assert all(re.match(r"life1 \(rank \d+\): lifecycle ", m) for m in messages), messages[:3]


def test_postprocess_writes_are_delivered_downstream(mapping_entry):
    outputs = run_on(mapping_entry, functools.partial(postprocess_sums, 3), {"source": N})
    partials = items_of(outputs, "partials")
    assert len(partials) == 3, "each of the 3 instances writes its sum from postprocess"
    assert sum(partials) == N * (N + 1) // 2
    # the global total only finishes after every partial sum arrived
    assert items_of(outputs, "total") == [N * (N + 1) // 2]


def test_stats_count_every_call(in_process_entry):
    result = run_result_on(in_process_entry, pipeline, {"source": N})
    per_pe = result.per_pe()
    assert set(per_pe) == {"source0", "stage_a1", "stage_b2", "stage_c3", "last4"}
    assert per_pe["source0"]["items_in"] == N and per_pe["source0"]["instances"] == 1
    for pe_id, row in per_pe.items():
        assert row["items_out"] == N, (pe_id, row)
        if pe_id != "source0":
            assert row["items_in"] == N, (pe_id, row)
    assert len({s.instance for s in result.stats}) == len(result.stats)


def test_instances_without_items_still_postprocess(mapping_entry):
    """5 instances, 2 items: the idle instances get end-of-stream and postprocess too."""
    outputs = run_on(mapping_entry, functools.partial(wide_chain, 5), {"source": 2})
    done = items_of(outputs, "observer", "done")
    assert len({rank for rank, _count in done}) == 5 and len(done) == 5, done
    assert sorted(count for _rank, count in done) == [0, 0, 0, 1, 1]


def test_empty_run_postprocesses_every_instance(mapping_entry):
    outputs = run_on(mapping_entry, functools.partial(observed, [0], 3, ["a", "b"]), {"source": 0})
    assert set(outputs) == {"observer1"}
    done = items_of(outputs, "observer", "done")
    assert len({rank for rank, _count in done}) == 3 and len(done) == 3, done
    assert all(count == 0 for _rank, count in done)


def test_source_postprocess_writes_are_delivered(mapping_entry):
    outputs = run_on(mapping_entry, source_postprocess_writes, {"source": 3})
    assert sorted(map(str, items_of(outputs, "sink"))) == ["1", "2", "3", "end"]


def test_run_returns_after_consumers_finished(mapping_entry, tmp_path):
    """A PE with no outputs has done all its work by the time run() returns."""
    path = tmp_path / "consumed.txt"
    outputs = run_on(mapping_entry, functools.partial(consumer_only, str(path)), {"source": N})
    assert outputs == {}
    assert sorted(int(line) for line in path.read_text(encoding="utf-8").split()) == R
