"""The floor of provenance on tiny items, in CPython: what writing one lineage record of the
original's format per item costs at the least (issue 19's tiny-item target: <= 3x a run
without provenance).

    python benchmarks/prov_floor.py [--items 300000]

No dispel4py here: a bare loop calling ``f(x) = x + 1`` per item (less than ``simple`` does
per item), against the same loop that also writes, per item, a lineage record as cheaply as
Python can: one pre-built %-template of the record (the original's fields, ~700 bytes), ids
from a counter, the second of the timestamps formatted once per second, the content as JSON,
into a 1 MB-buffered file. A real record needs more (uuids, derivations looked up, the
content of any type), so this is a lower bound on what a record costs; the target allows
twice what ``simple`` spends per item (``run.py``), about 1.4 us.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time

TEMPLATE = (
    '{"iterationId": "P-vm-1-%d", "actedOnBehalfOf": "P0", "_id": "P0_write_vm-1-%d", '
    '"iterationIndex": %d, "instanceId": "P-Instance--vm-1-0", "annotations": {}, "stateful": false, '
    '"feedbackIteration": false, "worker": "vm", "parameters": {}, "errors": "", "pid": "1", '
    '"derivationIds": [{"port": "input", "DerivedFromDatasetID": "vm-1-%d", '
    '"TriggeredByProcessIterationID": "Q-vm-1-%d", "prov_cluster": "Q0"}], '
    '"name": "P", "runId": "vm-1-0", "username": "anonymous", "startTime": "%s.%06d", '
    '"endTime": "%s.%06d", "type": "lineage", "streams": [{"content": [%s], "id": "vm-1-%d", '
    '"format": "", "location": "", "annotations": [], "port": "output", "size": %d}], '
    '"mapping": "simple", "prov_cluster": "P0"}\n'
)


def _f(x: int) -> int:
    return x + 1


def bare(n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        _f(i)
    return (time.perf_counter() - start) / n


def with_records(n: int, path: str) -> float:
    ids = itertools.count()
    second, prefix = -1, ""
    with open(path, "w", buffering=1 << 20) as out:
        start = time.perf_counter()
        for i in range(n):
            y = _f(i)
            now = time.time()
            if int(now) != second:
                second = int(now)
                prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            micros = int((now - second) * 1e6)
            content = json.dumps(y)
            k = next(ids)
            out.write(TEMPLATE % (k, k, i, k, k, prefix, micros, prefix, micros, content, k, len(content)))
        return (time.perf_counter() - start) / n


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--items", type=int, default=300_000)
    n = parser.parse_args().items
    with tempfile.TemporaryDirectory() as folder:
        b, r = bare(n), with_records(n, os.path.join(folder, "records.json"))
    cost = (r - b) * 1e6
    print(f"bare loop {b * 1e6:.3f} us/item; with a template record each {r * 1e6:.3f} us/item")
    print(f"one {len(TEMPLATE)}-byte record costs at least {cost:.2f} us; the 3x target allows 2x what")
    print("simple spends per item (run.py: ~0.7 us), so ~1.4 us per record")


if __name__ == "__main__":
    main()
