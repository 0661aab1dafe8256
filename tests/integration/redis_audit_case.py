"""One healthy random graph (``protocol_stress.py``) on a Redis mapping, with the driver's
audit (``mappings/redis/audit.py``) made as eager as it can be: every 10 ms, idle or not.
Used by ``test_redis_deletions.py``: with no tampering the audit must never fire.

    python tests/integration/redis_audit_case.py SEED MAPPING REDIS_URL

Prints ``EXACT audits=N decided=M`` (exit 0), ``MISMATCH …`` (exit 3) or ``ERROR: …`` (exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import protocol_stress

import dispel4py
import dispel4py.mappings.redis.audit as audit
import dispel4py.mappings.redis.driver_pool as driver_pool
from dispel4py.errors import Dispel4PyError


def main() -> int:
    seed, mapping, url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    made: list[audit.Auditor] = []
    plain_init = audit.Auditor.__init__

    def init(self: audit.Auditor, *args: object) -> None:
        plain_init(self, *args)
        made.append(self)

    audit.Auditor.__init__ = init  # type: ignore[method-assign]
    audit.IDLE_S = 0.0  # every tick, busy or idle
    driver_pool._TICK_S = 0.01  # type: ignore[attr-defined]
    case, expected = protocol_stress.fit(protocol_stress.draw_case(seed))
    graph, inputs = protocol_stress.build(case)
    options = {"num": case.workers, "batch_size": case.batch_size, "credits": case.credits, "redis_url": url}
    try:
        result = dispel4py.run(graph, inputs, mapping, **options)
    except Dispel4PyError as exc:
        print(f"ERROR: {exc}", flush=True)
        return 1
    assert result is not None
    if protocol_stress.multisets(result.outputs) != expected:
        print(f"MISMATCH {case.describe()}", flush=True)
        return 3
    print(f"EXACT audits={made[0].audits} decided={made[0].decided} {case.describe()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
