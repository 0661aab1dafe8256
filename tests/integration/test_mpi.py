"""The mpi mapping under a real mpiexec (from the mpich wheel)."""

from __future__ import annotations

import ast
import functools
import re
import resource
import time
from collections import Counter

import pytest
from _helpers import WORKFLOWS, cli, mpiexec, run, run_reaped

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(90)]

GT = "dispel4py.examples.graph_testing."
DETERMINISTIC = [
    "pipeline_test",
    "parallel_pipeline",
    "partition_parallel_pipeline",
    "pipeline_composite",
    "teecopy",
    "producer_tee",
    "split_merge",
    "unconnected_pipeline",
    "grouping_onetoall",
    "grouping_alltoone",
]
RANDOM_WORDS = ["word_count", "word_count_filter", "group_by", "group_by_stateful", "grouping_split_merge"]


def _outputs(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("Outputs: ")]
    assert len(lines) == 1, f"expected one Outputs line, got {len(lines)}:\n{stdout}"
    text = re.sub(r"np\.str_\(('[^']*')\)", r"\1", lines[0][len("Outputs: ") :])
    return ast.literal_eval(text)


def _multisets(outputs: dict) -> dict:
    return {
        pe: {port: Counter(map(repr, items)) for port, items in ports.items()}
        for pe, ports in outputs.items()
    }


def _mpi(ranks: int, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return run([mpiexec(), "-n", str(ranks), *cli("mpi", *args)], timeout=timeout, env=env)


@functools.cache
def _simple_reference(example: str) -> dict:
    """The outputs of ``dispel4py simple EXAMPLE -i 7``: deterministic, so run once per
    example in this process, not once per rank count."""
    reference = run(cli("simple", GT + example, "-i", "7"))
    assert reference.returncode == 0, reference.stderr
    return _multisets(_outputs(reference.stdout))


# 3 ranks: the conformance suite's mpi entry runs every example there (the same placement
# and transport; this file adds the command line, said once by rank 0, on 1 and 5 ranks)
@pytest.mark.parametrize("ranks", [1, 5])
@pytest.mark.parametrize("example", DETERMINISTIC)
def test_examples_match_simple(example: str, ranks: int) -> None:
    done = _mpi(ranks, GT + example, "-i", "7")
    assert done.returncode == 0, done.stderr
    assert _multisets(_outputs(done.stdout)) == _simple_reference(example)
    assert done.stderr.count("Processing 7 iterations.") == 1  # said once, by rank 0


def _check_word_counts(outputs: dict, n: int, exact: bool) -> None:
    (items,) = [items for ports in outputs.values() for items in ports.values()]
    counts: dict[str, list[int]] = {}
    for word, count in items:
        counts.setdefault(word, []).append(count)
    for word, seen in counts.items():  # one instance per word: its counts are 1..k
        assert sorted(seen) == list(range(1, len(seen) + 1)), (word, seen)
    assert len(items) == n if exact else len(items) <= 2 * n


# 3 ranks: the conformance suite's mpi entry runs every random example there, and
# test_issue_example_grouping_split_merge_on_three_ranks runs this very command
@pytest.mark.parametrize("ranks", [2, 5])
@pytest.mark.parametrize("example", RANDOM_WORDS)
def test_group_by_is_consistent_across_ranks(example: str, ranks: int, example_seed: int) -> None:
    done = _mpi(ranks, GT + example, "-i", "20")
    assert done.returncode == 0, done.stderr
    _check_word_counts(
        _outputs(done.stdout), 20, exact=example in ("word_count", "group_by", "group_by_stateful")
    )


def test_issue_example_grouping_split_merge_on_three_ranks(example_seed: int) -> None:
    done = _mpi(3, GT + "grouping_split_merge", "-i", "20")
    assert done.returncode == 0, done.stderr
    _check_word_counts(_outputs(done.stdout), 20, exact=False)


def test_partitioned_mode_with_s_runs() -> None:
    """The original hung here: partition inputs were keyed by objects lost in bcast (B8)."""
    done = _mpi(4, GT + "partition_parallel_pipeline", "-i", "5", "-s", "-v")
    assert done.returncode == 0, done.stderr
    assert _outputs(done.stdout) == {
        "TestOneInOneOut2": {"output": [1, 2, 3, 4, 5]},
        "TestOneInOneOut3": {"output": [1, 2, 3, 4, 5]},
    } or _multisets(_outputs(done.stdout)) == _multisets(
        {"TestOneInOneOut2": {"output": [1, 2, 3, 4, 5]}, "TestOneInOneOut3": {"output": [1, 2, 3, 4, 5]}}
    )
    assert "'TestOneInOneOut3': range(3, 6)" in done.stderr


def test_n_equal_to_world_size_is_accepted() -> None:
    done = _mpi(2, GT + "pipeline_test", "-i", "3", "-n", "2")
    assert done.returncode == 0, done.stderr


def test_n_different_from_world_size_is_one_clear_error() -> None:
    done = _mpi(3, GT + "pipeline_test", "-i", "3", "-n", "4")
    assert done.returncode == 2
    assert done.stderr.count("-n 4 does not match the MPI world size 3") == 1


def test_bad_input_is_reported_once() -> None:
    done = _mpi(3, GT + "pipeline_test", "-d", '{"Nope": 1}')
    assert done.returncode == 2
    assert done.stderr.count("names no PE of this workflow") == 1


def test_exception_on_a_rank_ends_every_rank_fast(tmp_path) -> None:
    """Once Boom raises, Slow holds every item it starts until its rank is ended
    (D4PY_HOLD_FILE): the run ends because of the error, with at most the item each rank
    had started done after it, and none of its processes left (no clock read)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"D4PY_MARK_DIR": str(marks), "D4PY_HOLD_FILE": str(tmp_path / "raised")}
    done, leftovers = run_reaped(
        [mpiexec(), "-n", "3", *cli("mpi", str(WORKFLOWS / "slow_and_boom.py"))], within=30, env=env
    )
    # every process of the run (ranks, their guards) is gone (they may still be ending as
    # mpiexec returns: ``within`` is a hang guard); only this run's own processes are looked at
    assert leftovers == []
    assert done.returncode != 0
    at_raise = int(re.search(r"raised at [0-9.]+ with (\d+) Slow items done", done.stderr).group(1))
    assert len(list(marks.iterdir())) - at_raise <= 3  # the item each rank had started, at most
    assert done.stderr.count("dispel4py: error: PE Boom1") == 1  # printed once, not per rank
    assert "on input 'input' with item 42 [rank" in done.stderr
    assert "slow_and_boom.py" in done.stderr
    assert "Outputs:" not in done.stdout


def test_large_messages_take_the_big_mpi_path() -> None:
    """Lowering pkl5's block size sends every array through the >2 GiB code path."""
    expected = {"Collect2": {"sums": [[25_000.0 * i for i in range(20)]]}}
    for blocksize in (None, "4096"):
        env = {"DISPEL4PY_MPI_BLOCKSIZE": blocksize} if blocksize else None
        done = _mpi(3, str(WORKFLOWS / "big_items.py"), env=env)
        assert done.returncode == 0, done.stderr
        assert _outputs(done.stdout) == expected


def test_idle_ranks_do_not_burn_a_core() -> None:
    """6 ranks, 2 s of sleeping work on one of them: the others must nap, not spin."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = _mpi(6, str(WORKFLOWS / "idle.py"))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # spinning ranks would use ~wall seconds each (5 x 2 s); start-up costs ~0.3 s per rank
    assert cpu < 0.6 * 6 + 0.5 * wall, (cpu, wall)


def test_library_call_under_mpiexec(tmp_path) -> None:
    script = tmp_path / "lib_mpi.py"
    script.write_text(
        "from dispel4py.examples.graph_testing.pipeline_test import graph\n"
        "from dispel4py.new.mpi_process import process\n"
        "prod = [n.obj for n in graph.nodes][0]\n"
        "result = process(graph, {prod: [{}, {}, {}]})\n"
        "if result is not None:\n"
        "    print('RESULT', sorted(result['TestOneInOneOut5']['output']))\n"
    )
    import sys

    done = run([mpiexec(), "-n", "3", sys.executable, str(script)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("RESULT [1, 2, 3]") == 1


def test_a_failure_on_one_rank_only_ends_every_rank() -> None:
    """Other ranks must not wait forever for the rank that could not load the workflow."""
    done = _mpi(3, str(WORKFLOWS / "fails_on_rank_1.py"), "-i", "3", timeout=30)  # a hang guard
    assert done.returncode == 2
    assert done.stderr.count("dispel4py: error: on rank 1: failed to load workflow") == 1
    assert "data file missing on this node" in done.stderr


def test_a_rank_failing_before_mpi_starts_ends_every_rank(tmp_path) -> None:
    """The other ranks would wait in MPI_Init forever (this hung a CI run: two ranks raced
    over the --stats-json check). Here rank 1 alone is given a folder that does not exist."""
    good, bad = tmp_path / "stats.json", tmp_path / "missing" / "stats.json"
    workflow = GT + "pipeline_test"
    done = run(  # timeout: a hang guard
        [
            mpiexec(),
            *("-n", "1", *cli("mpi", workflow, "--stats-json", str(good))),
            ":",
            *("-n", "1", *cli("mpi", workflow, "--stats-json", str(bad))),
        ],
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert f"dispel4py: error: --stats-json {bad}: the folder" in done.stderr
    assert "Traceback" not in done.stderr and "BAD TERMINATION" not in done.stdout


def test_a_slow_stage_feeds_the_next_while_it_drains(tmp_path) -> None:
    """As on the process mappings (test_process_flow.py): credits are taken in during a
    long drain, so the next stage gets items long before the slow one is done."""
    done = _mpi(3, str(WORKFLOWS / "latency_chain.py"), env={"LATENCY_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    outputs = ast.literal_eval(done.stdout.split("Outputs: ", 1)[1].strip())
    assert outputs["Slow1"]["flowed"] == [True], "Note had no 30th item while Slow drained"


def test_invalid_json_is_reported_once() -> None:
    done = _mpi(3, GT + "pipeline_test", "-d", "{bad")
    assert done.returncode == 2
    assert done.stderr.count("-d is not valid JSON") == 1
