"""Throughput benchmarks of every mapping against hand-written baselines, and the slow-stage
figure: does a static mapping get faster with more workers?

    python benchmarks/run.py [--mappings simple,multi,zmq_multi] [--items N] [--cpu-items N]
                             [--repeat R] [--num W] [--mpi-ranks 2,6] [--json out.json]
                             [--figures throughput,slow] [--slow-workers 2,4,8]
                             [--slow-mapping multi] [--slow-items N] [--slow-ms MS]

Every measurement runs in a fresh subprocess (``measure.py``, ``baseline.py`` or the real
``dispel4py`` command) and each figure is the median of ``--repeat`` runs. A mapping that
is not available yet is reported and skipped. See benchmarks/README.md for what the
figures mean and the targets.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workflows import GALAXY_ITEMS, GALAXY_MS, expected_total, totals

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent


@dataclass
class Row:
    """The figures of one mapping configuration (medians) and every raw sample."""

    label: str
    mapping: str
    status: str = "ok"
    note: str = ""
    tiny_items_per_s: float | None = None
    cpu_s: float | None = None
    trivial_s: float | None = None
    samples: dict[str, list[Any]] = field(default_factory=dict)


class Failed(Exception):
    """A measurement did not give a usable figure (reason in the message)."""


class Unavailable(Exception):
    """The mapping cannot run in this installation yet."""


# -- running subprocesses ------------------------------------------------------------------
def _run(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group; on timeout, end that whole group (mpiexec ranks,
    worker processes) so that a hung run leaves nothing behind."""
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
        env=None if env is None else {**os.environ, **env},
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end_group(proc)
            raise Failed(f"timed out after {timeout:.0f} s (a hang?): {' '.join(cmd)}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _end_group(proc: subprocess.Popen[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.communicate(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _json_record(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run a child that prints one JSON line; raise Unavailable/Failed on anything else."""
    proc = _run(cmd, timeout)
    records = []
    for line in proc.stdout.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # not ours (or two MPI ranks' lines interleaved)
    if proc.returncode != 0 or not records:
        raise Failed(f"exit {proc.returncode}: {_tail(proc.stderr or proc.stdout)}")
    record = records[0]
    if record["status"] == "unavailable":
        raise Unavailable(record["reason"])
    if record["status"] != "ok":
        raise Failed(f"wrong result {record.get('got')} (expected {record.get('expected')})")
    return record


def _dispel4py_cmd() -> list[str]:
    script = BIN / "dispel4py"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dispel4py"]


def _mpiexec(ranks: int) -> list[str]:
    mpiexec = BIN / "mpiexec" if (BIN / "mpiexec").exists() else shutil.which("mpiexec")
    if mpiexec is None:
        raise Unavailable("mpiexec not found (pip install 'dispel4py[mpi]')")
    return [str(mpiexec), "-n", str(ranks)]


# -- one configuration ---------------------------------------------------------------------
@dataclass
class Config:
    label: str
    mapping: str
    options: dict[str, Any]  # dispel4py.run(**options)
    cli_options: list[str]  # the same for the dispel4py command
    launcher: list[str]  # e.g. mpiexec -n 2


def _measure_cmd(config: Config, kind: str, items: int) -> list[str]:
    cmd = [*config.launcher, sys.executable, str(HERE / "measure.py"), kind]
    cmd += ["--mapping", config.mapping, "--items", str(items)]
    for key, value in config.options.items():
        cmd += ["-o", f"{key}={json.dumps(value)}"]
    return cmd


def _trivial_once(config: Config, timeout: float) -> float:
    workflow = str(HERE / "workflows.py")
    cmd = [*config.launcher, *_dispel4py_cmd(), config.mapping, workflow, "-a", "trivial_graph"]
    cmd += ["-i", "1", *config.cli_options]
    start = time.perf_counter()
    proc = _run(cmd, timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or "Outputs:" not in proc.stdout:
        raise Failed(f"CLI exit {proc.returncode}: {_tail(proc.stderr)}")
    return wall


def measure_config(config: Config, args: argparse.Namespace) -> Row:
    row = Row(config.label, config.mapping)
    try:
        tiny = [
            _json_record(_measure_cmd(config, "tiny", args.items), args.timeout) for _ in range(args.repeat)
        ]
        row.samples["tiny"] = tiny
        row.tiny_items_per_s = statistics.median(r["items_per_s"] for r in tiny)
        cpu = [
            _json_record(_measure_cmd(config, "cpu", args.cpu_items), args.timeout)
            for _ in range(args.repeat)
        ]
        row.samples["cpu"] = cpu
        row.cpu_s = statistics.median(r["wall_s"] for r in cpu)
        trivial = [_trivial_once(config, args.timeout) for _ in range(args.repeat)]
        row.samples["trivial_s"] = trivial
        row.trivial_s = statistics.median(trivial)
    except Unavailable as exc:
        row.status, row.note = "not available", str(exc)
    except Failed as exc:
        row.status, row.note = "failed", str(exc)
    return row


def configs(args: argparse.Namespace) -> list[Config]:
    result = []
    for mapping in args.mappings:
        if mapping == "simple":
            result.append(Config("simple", mapping, {}, [], []))
        elif mapping == "mpi":
            for ranks in args.mpi_ranks:
                try:
                    launcher = _mpiexec(ranks)
                except Unavailable:
                    launcher = ["mpiexec-not-found"]
                result.append(Config(f"mpi (-n {ranks})", mapping, {}, [], launcher))
        else:
            options = {"num": args.num}
            result.append(Config(f"{mapping} (-n {args.num})", mapping, options, ["-n", str(args.num)], []))
    return result


# -- baselines -----------------------------------------------------------------------------
def measure_baselines(args: argparse.Namespace) -> dict[str, Any]:
    """Medians of the hand-written baselines, plus bare interpreter start-up."""
    result: dict[str, Any] = {}
    for name in ("bare", "bare_process", "mp_pipe", "cpu"):
        items = args.cpu_items if name == "cpu" else args.items
        cmd = [sys.executable, str(HERE / "baseline.py"), name, "--json"]
        cmd += ["--cpu-items" if name == "cpu" else "--items", str(items)]
        samples = [_json_record(cmd, args.timeout) for _ in range(args.repeat)]
        result[name] = {
            "items_per_s": statistics.median(r["items_per_s"] for r in samples),
            "wall_s": statistics.median(r["wall_s"] for r in samples),
            "samples": samples,
        }
    starts = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        _run([sys.executable, "-c", "pass"], args.timeout)
        starts.append(time.perf_counter() - start)
    result["python_startup_s"] = statistics.median(starts)
    return result


# -- slow stage: more workers must not be slower -------------------------------------------
_PROCESS_RANGE = re.compile(r"'(SleepStage\d+)': range\((\d+), (\d+)\)")


@dataclass
class SlowRow:
    """One slow graph on ``--slow-mapping`` at each ``-n`` of ``--slow-workers``."""

    graph: str
    items: int
    ms: float
    status: str = "ok"
    note: str = ""
    wall_s: dict[int, float] = field(default_factory=dict)  # -n -> median wall seconds
    instances: dict[int, int] = field(default_factory=dict)  # -n -> SleepStage instances
    samples: dict[int, list[float]] = field(default_factory=dict)


def _slow_once(graph: str, n: int, row: SlowRow, args: argparse.Namespace) -> tuple[float, int]:
    """Wall seconds of the whole ``dispel4py`` command, and the SleepStage instances that
    its ``-v`` ``Processes:`` line shows; the totals are checked."""
    cmd = [*_dispel4py_cmd(), args.slow_mapping, str(HERE / "workflows.py"), "-a", graph]
    cmd += ["-i", "1", "-n", str(n), "-v"]
    env = {"D4PY_BENCH_SLOW_ITEMS": str(args.slow_items), "D4PY_BENCH_SLOW_MS": str(args.slow_ms)}
    start = time.perf_counter()
    proc = _run(cmd, args.timeout, env)
    wall = time.perf_counter() - start
    outputs = [ln for ln in proc.stdout.splitlines() if ln.startswith("Outputs: ")]
    if proc.returncode != 0 or not outputs:
        raise Failed(f"-n {n}: exit {proc.returncode}: {_tail(proc.stderr)}")
    got = totals(ast.literal_eval(outputs[0][len("Outputs: ") :]))
    if got != expected_total(row.items):
        raise Failed(f"-n {n}: wrong result {got} (expected {expected_total(row.items)})")
    found = _PROCESS_RANGE.search(proc.stderr)
    return wall, (int(found.group(3)) - int(found.group(2)) if found else 0)


def measure_slow(args: argparse.Namespace) -> list[SlowRow]:
    rows = [
        SlowRow("slow_stage_graph", args.slow_items, args.slow_ms),
        SlowRow("galaxy_like_graph", GALAXY_ITEMS, GALAXY_MS),
    ]
    for row in rows:
        print(f"measuring {row.graph} on {args.slow_mapping} ...", file=sys.stderr, flush=True)
        try:
            for n in args.slow_workers:
                runs = [_slow_once(row.graph, n, row, args) for _ in range(args.repeat)]
                row.samples[n] = [wall for wall, _ in runs]
                row.wall_s[n] = statistics.median(row.samples[n])
                row.instances[n] = runs[0][1]
        except Failed as exc:
            row.status, row.note = "failed", str(exc)
    return rows


def slow_table(rows: list[SlowRow], args: argparse.Namespace) -> str:
    """-n columns (wall s, [SleepStage instances]), then a check per step up in -n."""
    ns = args.slow_workers
    steps = list(itertools.pairwise(ns))
    head = ["graph", *(f"-n {n}" for n in ns), *(f"-n {b} <= -n {a}" for a, b in steps), "1 process s"]
    lines = [head]
    for r in rows:
        label = f"{r.graph} ({r.items} x {r.ms:g} ms)"
        if r.status != "ok":
            lines.append([label, r.status] + [""] * (len(head) - 2))
            continue
        cells = [f"{r.wall_s[n]:.2f} [{r.instances[n]}]" for n in ns]
        checks = [
            "yes" if r.wall_s[b] <= r.wall_s[a] else f"no ({r.wall_s[b] / r.wall_s[a]:.2f}x)"
            for a, b in steps
        ]
        lines.append([label, *cells, *checks, f"{r.items * r.ms / 1000:.2f}"])
    out = _align(lines)
    header = (
        f"slow stage: {args.slow_mapping}, wall s of the whole command (median of {args.repeat}), "
        f"[SleepStage instances from -v]; {os.cpu_count()} cores; "
        f"load average {args.load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    notes = [f"  {r.graph}: {r.status}: {r.note}" for r in rows if r.status != "ok"]
    return "\n".join([header, *out, *notes])


# -- report --------------------------------------------------------------------------------
def _align(lines: list[Any]) -> list[str]:
    """Rows of cells as text columns: the first left-aligned, the rest right; a rule under the head."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
        for line in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[Row], base: dict[str, Any], args: argparse.Namespace) -> str:
    simple = next((r for r in rows if r.mapping == "simple" and r.cpu_s), None)
    bare, pipe = base["bare"]["items_per_s"], base["mp_pipe"]["items_per_s"]
    head = (
        "mapping",
        "tiny items/s",
        "/bare loop",
        "/mp pipe",
        "cpu-bound s",
        "speed-up",
        "/serial cpu",
        "trivial run s",
    )
    lines = [head]
    for r in rows:
        if r.status != "ok":
            lines.append((r.label, r.status, "", "", "", "", "", ""))
            continue
        tiny, cpu = r.tiny_items_per_s, r.cpu_s
        lines.append(
            (
                r.label,
                _fmt(tiny, ",.0f"),
                _fmt(tiny / bare if tiny else None, ".2f"),
                _fmt(tiny / pipe if tiny else None, ".2f"),
                _fmt(cpu, ".2f"),
                _fmt(simple.cpu_s / cpu if simple and cpu else None, ".2f") + "x",
                _fmt(base["cpu"]["wall_s"] / cpu if cpu else None, ".2f") + "x",
                _fmt(r.trivial_s, ".3f"),
            )
        )
    lines.append(("bare loop", f"{bare:,.0f}", "1.00", f"{bare / pipe:.2f}", "", "", "", ""))
    lines.append(("bare process()", f"{base['bare_process']['items_per_s']:,.0f}", "", "", "", "", "", ""))
    lines.append(("mp pipe (2 proc)", f"{pipe:,.0f}", f"{pipe / bare:.2f}", "1.00", "", "", "", ""))
    serial = base["cpu"]["wall_s"]
    lines.append(("serial cpu loop", "", "", "", f"{serial:.2f}", "", "1.00x", ""))
    lines.append(("python -c pass", "", "", "", "", "", "", f"{base['python_startup_s']:.3f}"))
    out = _align(lines)
    notes = [f"  {r.label}: {r.status}: {r.note}" for r in rows if r.status != "ok"]
    header = (
        f"tiny: {args.items:,} items; cpu-bound: {args.cpu_items:,} items x ~1 ms; "
        f"median of {args.repeat}; {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"load average {args.load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    return "\n".join([header, *out, *notes])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="dispel4py throughput benchmarks")
    parser.add_argument("--mappings", default="simple,multi,zmq_multi", help="comma-separated")
    parser.add_argument("--items", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    parser.add_argument("--cpu-items", type=lambda s: int(s.replace("_", "")), default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--num", type=int, default=os.cpu_count() or 1, help="workers of multi etc.")
    parser.add_argument("--mpi-ranks", default="2", help="comma-separated mpiexec -n values")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per subprocess")
    parser.add_argument("--json", dest="json_out", help="write all figures and samples here")
    parser.add_argument("--figures", default="throughput,slow", help="throughput and/or slow")
    parser.add_argument("--slow-workers", default="2,4,8", help="comma-separated -n of the slow figure")
    parser.add_argument("--slow-mapping", default="multi", help="the mapping of the slow figure")
    parser.add_argument("--slow-items", type=int, default=200, help="items of slow_stage_graph")
    parser.add_argument("--slow-ms", type=float, default=20.0, help="ms per item of slow_stage_graph")
    args = parser.parse_args(argv)
    args.mappings = [m.strip() for m in args.mappings.split(",") if m.strip()]
    args.mpi_ranks = [int(n) for n in args.mpi_ranks.split(",")]
    args.figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = sorted(set(args.figures) - {"throughput", "slow"})
    if unknown:
        parser.error(f"unknown --figures {', '.join(unknown)}; choose from: throughput, slow")
    args.slow_workers = [int(n) for n in args.slow_workers.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    report: dict[str, Any] = {"args": vars(args)}
    sections, failed = [], False
    if "throughput" in args.figures:
        base = measure_baselines(args)
        rows = []
        for config in configs(args):
            print(f"measuring {config.label} ...", file=sys.stderr, flush=True)
            rows.append(measure_config(config, args))
        sections.append(table(rows, base, args))
        report.update(baselines=base, rows=[asdict(r) for r in rows])
        failed = any(r.status == "failed" for r in rows)
    if "slow" in args.figures:
        slow_rows = measure_slow(args)
        sections.append(slow_table(slow_rows, args))
        report["slow"] = [asdict(r) for r in slow_rows]
        failed = failed or any(r.status == "failed" for r in slow_rows)
    print("\n\n".join(sections))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
