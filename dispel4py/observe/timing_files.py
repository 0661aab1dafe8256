"""The CSV and JSON files of the ``timed_*`` mappings (spec §7.2): per-instance files, the
summaries per PE and per instance, every iteration, and the latency summary.

Each file names the flag that chose it when it cannot be written. Iteration files are
written line by line without a ``csv.writer`` call per line: a run may time millions of
calls.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispel4py.engine.result import InstanceStats
from dispel4py.errors import UsageError
from dispel4py.observe.timing_options import TimingOptions, safe_token

__all__ = ["latency_stats", "percentile", "write_json", "write_tables"]


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile of sorted ``values``, interpolating linearly (0.0 if empty)."""
    if not values:
        return 0.0
    position = p / 100.0 * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def latency_stats(values: Iterable[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"min": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    return {
        "min": ordered[0],
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "max": ordered[-1],
    }


def _write(path: Path, flag: str, write: Any) -> Path:
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            write(f)
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write {path}: {exc.strerror or exc}") from exc
    return path


def _write_csv(path: Path, flag: str, header: list[str], rows: Iterable[Sequence[Any]]) -> Path:
    def write(f: Any) -> None:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)

    return _write(path, flag, write)


def write_json(path: Path, flag: str, payload: dict[str, Any]) -> Path:
    return _write(path, flag, lambda f: json.dump(payload, f, indent=2))


@dataclass
class _Instance:
    pe_id: str
    rank: int
    times: list[float]  # seconds of each process() call
    count: int
    total: float
    lat: dict[str, float]  # latency_stats(times)

    @property
    def instance_id(self) -> str:
        return f"{self.pe_id}@{self.rank}"

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0

    def iteration_lines(self, *extra: float) -> Iterable[str]:
        """CSV lines ``pe_id,rank,instance_id,index,secs[,extra...]``, made without a
        csv.writer call per line: a run may time millions of calls."""
        head = _csv_line([self.pe_id, self.rank, self.instance_id])
        tail = "".join("," + repr(x) for x in extra) + _EOL
        return (f"{head},{i},{t!r}{tail}" for i, t in enumerate(self.times, start=1))


_EOL = "\r\n"  # csv.writer's line end, as in the original's files


def _csv_line(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def _instances(stats: Iterable[InstanceStats]) -> list[_Instance]:
    rows = []
    for s in stats:
        times = list(s.iteration_s or [])
        # a mapping that does not time each call still reports its calls and busy time
        count, total = (len(times), sum(times)) if s.iteration_s is not None else (s.calls, s.busy_s)
        rows.append(_Instance(s.pe_id, s.instance, times, count, total, latency_stats(times)))
    return sorted(rows, key=lambda r: (r.pe_id, r.rank))


def _write_lines(path: Path, flag: str, header: list[str], lines: Iterable[str]) -> Path:
    def write(f: Any) -> None:
        f.write(_csv_line(header) + _EOL)
        f.writelines(lines)

    return _write(path, flag, write)


def _per_instance_files(timing: TimingOptions, rows: list[_Instance]) -> None:
    for r in rows:
        token = f"{safe_token(r.pe_id)}_rank{r.rank}"
        _write_csv(
            timing.directory / timing.name(token),
            "--timing-dir",
            ["pe_id", "rank", "count", "total_secs", "avg_secs"],
            [[r.pe_id, r.rank, r.count, r.total, r.avg]],
        )
        _write_lines(
            timing.directory / timing.name(f"iterations_{token}"),
            "--timing-dir",
            ["pe_id", "rank", "instance_id", "iteration_index", "iteration_secs"],
            r.iteration_lines(),
        )


_LATENCY = ["min_secs", "p50_secs", "p95_secs", "max_secs"]


def _pe_summary(timing: TimingOptions, rows: list[_Instance]) -> Path:
    by_pe: dict[str, list[_Instance]] = {}
    for r in rows:
        by_pe.setdefault(r.pe_id, []).append(r)
    table = []
    for pe_id, instances in by_pe.items():
        count, total = sum(r.count for r in instances), sum(r.total for r in instances)
        lat = latency_stats(t for r in instances for t in r.times)
        ranks = ";".join(str(r.rank) for r in instances)
        table.append(
            [pe_id, len(instances), ranks, count, total, total / count if count else 0.0, *lat.values()]
        )
    header = ["pe_id", "rank_count", "ranks", "total_count", "total_secs", "avg_secs", *_LATENCY]
    path = timing.path("summary_file", timing.name("summary"))
    return _write_csv(path, "--summary-file", header, table)


def _instance_summary(timing: TimingOptions, rows: list[_Instance]) -> Path:
    header = ["pe_id", "rank", "instance_id", "total_count", "total_secs", "avg_secs", *_LATENCY]
    table = [
        [r.pe_id, r.rank, r.instance_id, r.count, r.total, r.avg, *latency_stats(r.times).values()]
        for r in rows
    ]
    path = timing.path("instance_summary_file", timing.name("instances"))
    return _write_csv(path, "--instance-summary-file", header, table)


def _iteration_table(timing: TimingOptions, rows: list[_Instance]) -> Path:
    header = ["pe_id", "rank", "instance_id", "iteration_index", "iteration_secs"]
    header += ["instance_p50_secs", "instance_p95_secs", "instance_max_secs"]
    lines = (line for r in rows for line in r.iteration_lines(r.lat["p50"], r.lat["p95"], r.lat["max"]))
    path = timing.path("iteration_summary_file", timing.name("iteration_timings"))
    return _write_lines(path, "--iteration-summary-file", header, lines)


def _iteration_summary(timing: TimingOptions, rows: list[_Instance]) -> Path:
    header = ["pe_id", "rank", "instance_id", "iteration_count", "total_secs", "avg_secs", *_LATENCY]
    table = []
    for r in rows:
        if r.times:
            total = sum(r.times)
            stats = r.lat.values()
            table.append([r.pe_id, r.rank, r.instance_id, len(r.times), total, total / len(r.times), *stats])
    path = timing.path("iteration_latency_summary_file", timing.name("iteration_timings_summary"))
    return _write_csv(path, "--iteration-latency-summary-file", header, table)


def write_tables(timing: TimingOptions, stats: Iterable[InstanceStats]) -> list[tuple[str, Path]]:
    """Every CSV file of a run; ``(what, path)`` of each summary, in the original's order."""
    rows = _instances(stats)
    _per_instance_files(timing, rows)
    return [
        (what, write(timing, rows))
        for what, write in (
            ("Timing summary (per PE)", _pe_summary),
            ("Timing summary (per instance)", _instance_summary),
            ("Timing summary (per iteration)", _iteration_table),
            ("Timing latency summary (from iterations)", _iteration_summary),
        )
    ]
