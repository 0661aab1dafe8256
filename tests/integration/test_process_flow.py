"""Bounded memory and no deadlock on multi and zmq_multi."""

from __future__ import annotations

import ast

import pytest
from _helpers import WORKFLOWS, cli, peak_tree_rss_mb, run

MAPPINGS = ["multi", "zmq_multi"]


def _outputs(stdout: str) -> dict:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("Outputs: "))
    return ast.literal_eval(line[len("Outputs: ") :])


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("mapping", MAPPINGS)
def test_millions_of_items_in_bounded_memory(mapping: str) -> None:
    """The peak RSS of the whole run (driver and workers) at 0.2 M and at 2.2 M items: items
    held anywhere (a queue that grows, a per-item leak) show as growth between the two (2 M
    more ints held take >= 72 MB); a bounded run's peak does not depend on the count. 0.2 M
    items already fill every queue and batch (the steady state), so the smaller run needs
    no more; 2.4 M items in all instead of 4 M."""
    peaks = []
    for items in (200_000, 2_200_000):
        cmd = cli(mapping, str(WORKFLOWS / "many_items.py"), "-n", "2")
        peak, done = peak_tree_rss_mb(cmd, {"D4PY_ITEMS": str(items)}, timeout=110)
        assert done.returncode == 0, done.stderr
        assert _outputs(done.stdout) == {"Sum2": {"total": [items * (items + 1) // 2]}}
        peaks.append(peak)
    assert peaks[1] - peaks[0] < 25, f"peak RSS {peaks[0]:.0f} MB at 0.2 M items, {peaks[1]:.0f} MB at 2.2 M"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("batch", ["1", "7"])
def test_two_workers_feeding_each_other_do_not_deadlock(mapping: str, batch: str) -> None:
    """-n 2 replicates Tag and Count on both workers; group-by sends each way.

    Tiny batches exhaust the credits constantly, so both workers block on each other
    again and again; the run must still finish with every item counted exactly once.
    """
    items = 20_000
    done = run(
        cli(mapping, str(WORKFLOWS / "crossfeed.py"), "-n", "2", "--batch-size", batch, "-v"),
        timeout=110,
        env={"D4PY_ITEMS": str(items)},
    )
    assert done.returncode == 0, done.stderr
    assert sum(_outputs(done.stdout)["Sum3"]["total"]) == items
    # the placement really is crossed: Tag and Count have an instance on each worker
    assert "'Tag1': range(1, 3)" in done.stderr and "'Count2': range(3, 5)" in done.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mapping", MAPPINGS)
def test_a_slow_stage_feeds_the_next_while_it_drains(mapping: str, tmp_path) -> None:
    """Credits coming back are taken in during a long drain (not only when the worker waits),
    so the next stage gets items long before the slow stage is done: Note has its 30th item
    before Slow starts its 45th of 60 (Slow waits for it there; latency_chain.py)."""
    done = run(
        cli(mapping, str(WORKFLOWS / "latency_chain.py"), "-n", "3"), env={"LATENCY_DIR": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert _outputs(done.stdout)["Slow1"]["flowed"] == [True], "Note had no 30th item while Slow drained"
