"""What recording provenance costs: each figure run without and with provenance
(``file`` mode), in fresh subprocesses (``measure.py``), the median of ``--repeat`` runs.

    python benchmarks/prov_bench.py                                   # the default table
    python benchmarks/prov_bench.py --tiny-items 1000000 --mappings simple --repeat 1

Columns: wall seconds off and on, the ratio on/off, CPU seconds off and on (the measuring
process and its children: less sensitive to a loaded machine than wall time), and the peak
RSS (``ru_maxrss`` of the measuring process: the whole run on ``simple``, the driver only on
process mappings) with provenance on. The records are written to a temporary folder,
removed afterwards, with ``--bulk-size`` records per file; ``--writer process`` has a
writer process make the JSON and the files whatever the load, ``--writer thread`` the
worker itself (a thread writes the files), ``auto`` (the default) decides as a run does;
``--folder /dev/shm`` puts it in memory, to tell the disk's share of the time (a tiny-item
record is about 1 KB: 100 000 items write 200 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def _once(
    kind: str, mapping: str, items: int, options: list[str], timeout: float, writer: str = "auto"
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.join(HERE, "measure.py"),
        kind,
        "--mapping",
        mapping,
        "--items",
        str(items),
    ]
    for option in options:
        cmd += ["-o", option]
    env = {**os.environ, "DISPEL4PY_PROV_WRITER_RATE": "0"} if writer == "process" else None
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    record: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if record["status"] != "ok":
        raise RuntimeError(f"{' '.join(cmd)}: {record}")
    return record


def figure(kind: str, mapping: str, items: int, num: int, args: argparse.Namespace) -> dict[str, Any]:
    base = [] if mapping == "simple" else [f"num={num}"]
    offs, ons, rss, cpu_off, cpu_on = [], [], [], [], []
    for _ in range(args.repeat):
        off = _once(kind, mapping, items, base, args.timeout)
        offs.append(off["wall_s"])
        cpu_off.append(off["cpu_s"])
        with tempfile.TemporaryDirectory(prefix="d4py-prov-bench-", dir=args.folder) as folder:
            prov = json.dumps(
                {"path": folder, "bulk_size": args.bulk_size, "writer_process": args.writer != "thread"}
            )
            on = _once(kind, mapping, items, [*base, f"provenance={prov}"], args.timeout, args.writer)
        ons.append(on["wall_s"])
        cpu_on.append(on["cpu_s"])
        rss.append(on["maxrss_kb"])
    row = {"kind": kind, "mapping": mapping, "items": items, "maxrss_mb": max(rss) / 1024}
    row["off_s"], row["on_s"] = statistics.median(offs), statistics.median(ons)
    row["cpu_off"], row["cpu_on"] = statistics.median(cpu_off), statistics.median(cpu_on)
    row["ratio"] = row["on_s"] / row["off_s"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mappings", default="simple,multi,dyn_multi")
    parser.add_argument("--tiny-items", type=int, default=100_000)
    parser.add_argument("--cpu-items", type=int, default=1000)
    parser.add_argument("--num", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bulk-size", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--writer",
        choices=("auto", "process", "thread"),
        default="auto",
        help="who makes the JSON and the files: a writer process per worker when records come "
        "fast and a core seems free, else the worker (auto, the default); always a writer "
        "process (from the second batch); always the worker (a thread writes the files)",
    )
    parser.add_argument(
        "--folder",
        default=None,
        help="where the records go (in a temporary folder; default: the system's)",
    )
    args = parser.parse_args(argv)
    where = args.folder or tempfile.gettempdir()
    print(
        f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); records in {where}, "
        f"made by a writer {args.writer}"
    )
    head = f"{'figure':<6} {'mapping':<10} {'items':>9} {'off s':>8} {'on s':>8} {'on/off':>7}"
    print(f"{head} {'CPU off s':>9} {'CPU on s':>9} {'RSS on MB':>9}")
    for mapping in args.mappings.split(","):
        for kind, items in (("tiny", args.tiny_items), ("cpu", args.cpu_items)):
            if kind == "tiny" and mapping != "simple":
                continue  # the target for tiny items is on simple
            row = figure(kind, mapping, items, args.num, args)
            line = f"{kind:<6} {mapping:<10} {items:>9} {row['off_s']:>8.2f} {row['on_s']:>8.2f}"
            line += f" {row['ratio']:>7.2f}"
            print(f"{line} {row['cpu_off']:>9.2f} {row['cpu_on']:>9.2f} {row['maxrss_mb']:>9.0f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
