"""The processes of a Redis chaos case (``test_redis_chaos.py``): a driver running one of
``protocol_stress.py``'s random graphs on a Redis mapping, and workers that join it.

    python tests/integration/redis_chaos.py driver --seed 7 --mapping dyn_redis \
        --redis-url redis://127.0.0.1:PORT/0 --key-file run.key --run chaos-7
    python tests/integration/redis_chaos.py worker --redis-url … --key-file run.key --run chaos-7

The driver computes ``simple``'s result of the case first, then runs it and prints one line:
``EXACT``, ``MISMATCH …`` (exit 3) or ``ERROR: <the run's error>`` (exit 1). Both sides lower
the spill limit of shared tasks (64 MB) to a few KB, so that many tasks send their outputs
before their commit, as huge tasks do.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import protocol_stress

import dispel4py
import dispel4py.mappings.redis.queues as redis_queues
from dispel4py.errors import Dispel4PyError

SPILL_BYTES = 4096  # a shared task that writes more than this sends it early


def lower_the_spill_limit() -> None:
    assert hasattr(redis_queues, "_SPILL_BYTES"), "the spill limit moved: update redis_chaos.py"
    redis_queues._SPILL_BYTES = SPILL_BYTES  # type: ignore[attr-defined]


def drive(args: argparse.Namespace) -> int:
    case, expected = protocol_stress.fit(protocol_stress.draw_case(args.seed))
    graph, inputs = protocol_stress.build(case)
    lower_the_spill_limit()
    options = {
        "num": args.local,
        "batch_size": case.batch_size,
        "credits": case.credits,
        "redis_url": args.redis_url,
        "key_file": args.key_file,
        "run": args.run,
        "claim_idle_ms": 1000,
    }
    try:
        result = dispel4py.run(graph, inputs, args.mapping, **options)
    except Dispel4PyError as exc:
        print(f"ERROR: {exc}", flush=True)
        return 1
    assert result is not None
    got = protocol_stress.multisets(result.outputs)
    if got != expected:
        diff = {
            key: (
                dict(expected.get(key, Counter()) - got.get(key, Counter())),
                dict(got.get(key, Counter()) - expected.get(key, Counter())),
            )
            for key in set(got) | set(expected)
            if got.get(key) != expected.get(key)
        }
        print(f"MISMATCH {case.describe()}: (missing, extra) {diff}", flush=True)
        return 3
    print(f"EXACT {case.describe()}", flush=True)
    return 0


def join(argv: list[str]) -> int:
    from dispel4py.cli import worker as worker_cli

    lower_the_spill_limit()
    return worker_cli.main(argv)


def main() -> int:
    if sys.argv[1:2] == ["worker"]:
        return join(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["driver"])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--mapping", required=True)
    parser.add_argument("--local", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--run", required=True)
    return drive(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
