"""``--on-error dead-letter`` means the same whatever the batch size, the load and the nesting.

Random cases (the seed of each is printed, and ``D4PY_DL_CASES`` raises their number): a
mapping of the Redis family, a batch size of 1-1024, 1-4 workers, a few hundred to a few
thousand items, of which a random share (0-5 %) make Picky raise. Tasks of Picky run both
at the top of a worker's loop and nested (a writer of Double helping under backpressure,
which a batch size of 1 and many items make common). Every case must give up exactly the
bad items and count every other item exactly once (count, sum and sum of squares).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
from pathlib import Path

import pytest
from _helpers import WORKFLOWS, cli
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

WORKFLOW = str(WORKFLOWS / "redis_dead_letter.py")
MAPPINGS = ("dyn_redis", "dyn_auto_redis", "hybrid_redis", "redis")
CASES = int(os.environ.get("D4PY_DL_CASES", "4"))  # a new seed every run: more over time
CASE_TIMEOUT_S = 240  # generous: the machine may be loaded; a case takes seconds

pytestmark = pytest.mark.timeout(CASES * (CASE_TIMEOUT_S + 30))


def bad_items(seed: int, items: int, share: float) -> list[int]:
    """Picky's bad items (the same rule as the workflow's ``bad``)."""
    return [x for x in range(2 * items) if random.Random(seed * 1_000_003 + x).random() < share]


def draw(seed: int) -> dict[str, object]:
    """A case. Batches under 16 get at most 500 items (1000 numbers, as many tasks at batch
    size 1): thousands of one-item Redis tasks cost tens of seconds and add no code path
    that a thousand do not already take; large batches still get up to 3000 items (6 batches
    of 1024)."""
    rng = random.Random(seed)
    batch = rng.choice((1, 1, 2, 3, 7, 16, 64, 256, 1024, rng.randint(1, 1024)))
    return {
        "mapping": rng.choice(MAPPINGS),
        "batch": batch,
        "workers": rng.randint(1, 4),
        "items": rng.choice((200, 500) if batch < 16 else (200, 500, 1000, 3000)),
        "share": rng.choice((0.0, 0.002, 0.01, 0.05)),
    }


def test_dead_letter_gives_up_exactly_the_bad_items_at_any_batch_size(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    base = int(os.environ.get("D4PY_DL_SEED", random.randrange(1_000_000)))
    for seed in range(base, base + CASES):
        case = draw(seed)
        what = f"seed {seed} (D4PY_DL_SEED={seed} D4PY_DL_CASES=1): {case}"
        print(what, flush=True)
        items, share = int(case["items"]), float(case["share"])  # type: ignore[arg-type]
        bad = set(bad_items(seed, items, share))
        good = [x for x in range(2 * items) if x not in bad]
        env = {
            **os.environ,
            "D4PY_DL_SEED": str(seed),
            "D4PY_DL_ITEMS": str(items),
            "D4PY_DL_BAD": str(share),
        }
        args = ("-n", str(case["workers"]), "--batch-size", str(case["batch"]), "--on-error", "dead-letter")
        command = cli(str(case["mapping"]), WORKFLOW, *args, "--redis-url", redis_server.url)
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=CASE_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"HANG after {CASE_TIMEOUT_S} s, {what}")
        expected = (len(good), sum(good), sum(x * x for x in good))
        assert f"Outputs: {{'Total3': {{'total': [{expected}]}}}}" in done.stdout, (
            what,
            done.stdout,
            done.stderr,
        )
        if bad:
            assert done.returncode == 1, (what, done.stderr)
            given_up = re.findall(r"error: (\d+) task\(s\) given up after 3 deliveries", done.stderr)
            assert given_up == [str(len(bad))], (what, done.stderr)
            shown = {int(x) for x in re.findall(r"Picky2\[0\] with item (\d+)", done.stderr)}
            assert shown and shown <= bad, (what, done.stderr)
        else:
            assert done.returncode == 0, (what, done.stderr)
        assert "Traceback" not in done.stderr, (what, done.stderr)
        assert redis_server.run_keys() == [], what
