"""Hand-written baselines: the same work as the benchmark workflows, without dispel4py.

* ``bare``: the same PE objects wired by hand in one loop: the producer's ``write`` calls
  ``AddOne._process`` then ``SumConsumer._process`` directly. This is the floor for any
  engine that calls ``_process`` once per item in one process (the "bare hand-written loop").
* ``bare_process``: the same, but through ``process({"input": x})`` and the returned dict,
  the per-item protocol of the original dispel4py.
* ``mp_pipe``: a producer process appends to a list and sends it (pickled) through a
  ``multiprocessing.Pipe`` every 1000 items; a consumer process does ``x + 1`` and the sum.
  The ceiling for a two-process pipeline that batches, process start-up included.
* ``cpu``: ``BurnCPU`` on N items in a plain loop: the serial time of the CPU-bound work.

    python benchmarks/baseline.py                      # all, readable
    python benchmarks/baseline.py mp_pipe --items 3000000 --json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from workflows import (
    CPU_LOOPS,
    DEFAULT_ITEMS,
    AddOne,
    BurnCPU,
    SumConsumer,
    TinyProducer,
    expected_total,
)

__all__ = ["bare", "bare_process", "mp_pipe", "cpu", "BASELINES"]

BATCH = 1000


def bare(n_items: int) -> dict[str, int]:
    producer, add_one, consumer = TinyProducer(n_items), AddOne(), SumConsumer()
    add, consume = add_one._process, consumer._process

    def write(name: str, x: int) -> None:
        consume(add(x))

    producer.write = write  # type: ignore[method-assign]
    producer.process({})
    return {"count": consumer.count, "sum": consumer.sum}


def bare_process(n_items: int) -> dict[str, int]:
    producer, add_one, consumer = TinyProducer(n_items), AddOne(), SumConsumer()

    def write(name: str, x: int) -> None:
        out = add_one.process({"input": x})
        consumer.process({"input": out["output"]})

    producer.write = write  # type: ignore[method-assign]
    producer.process({})
    return {"count": consumer.count, "sum": consumer.sum}


def _pipe_producer(conn: Connection, n_items: int) -> None:
    producer = TinyProducer(n_items)
    buf: list[int] = []

    def write(name: str, x: int) -> None:
        nonlocal buf
        buf.append(x)
        if len(buf) >= BATCH:
            conn.send(buf)
            buf = []

    producer.write = write  # type: ignore[method-assign]
    producer.process({})
    if buf:
        conn.send(buf)
    conn.send(None)
    conn.close()


def _pipe_consumer(conn: Connection, result: Connection) -> None:
    add, consumer = AddOne()._process, SumConsumer()
    consume = consumer._process
    while (batch := conn.recv()) is not None:
        for x in batch:
            consume(add(x))
    result.send({"count": consumer.count, "sum": consumer.sum})
    result.close()


def mp_pipe(n_items: int) -> dict[str, int]:
    data_out, data_in = multiprocessing.Pipe(duplex=False)
    result_out, result_in = multiprocessing.Pipe(duplex=False)
    consumer = multiprocessing.Process(target=_pipe_consumer, args=(data_out, result_in))
    producer = multiprocessing.Process(target=_pipe_producer, args=(data_in, n_items))
    consumer.start()
    producer.start()
    data_in.close()  # the children hold their own ends
    result_in.close()
    total = result_out.recv()
    producer.join()
    consumer.join()
    return total


def cpu(n_items: int) -> dict[str, int]:
    work, consumer = BurnCPU(CPU_LOOPS)._process, SumConsumer()
    for i in range(n_items):
        consumer._process(work(i))
    return {"count": consumer.count, "sum": consumer.sum}


BASELINES: dict[str, Callable[[int], dict[str, int]]] = {
    "bare": bare,
    "bare_process": bare_process,
    "mp_pipe": mp_pipe,
    "cpu": cpu,
}


def measure(name: str, n_items: int) -> dict[str, Any]:
    """One timed run of baseline ``name``, as a JSON-able dict."""
    start = time.perf_counter()
    total = BASELINES[name](n_items)
    wall = time.perf_counter() - start
    record: dict[str, Any] = {"status": "ok", "baseline": name, "items": n_items, "wall_s": wall}
    record["items_per_s"] = n_items / wall if wall > 0 else None
    if total != expected_total(n_items):
        record.update(status="wrong", got=total, expected=expected_total(n_items))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Hand-written baselines (no dispel4py engine).")
    parser.add_argument("which", nargs="?", default="all", choices=["all", *BASELINES])
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS, help="tiny items")
    parser.add_argument("--cpu-items", type=int, default=2000, help="items for 'cpu'")
    parser.add_argument("--json", action="store_true", help="one JSON line per baseline")
    args = parser.parse_args(argv)
    names = list(BASELINES) if args.which == "all" else [args.which]
    for name in names:
        record = measure(name, args.cpu_items if name == "cpu" else args.items)
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            rate = record["items_per_s"]
            print(f"{name:13} {record['items']:>9} items  {record['wall_s']:8.3f} s  {rate:>12,.0f} items/s")
        if record["status"] != "ok":
            print(f"{name}: wrong result {record['got']} (expected {record['expected']})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
