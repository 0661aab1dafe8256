"""The files of the ``timed_*`` mappings, with the original's names and columns (spec §7.2),
so that analysis scripts written for the original keep working.

Everything is computed from the engine's own counters (``InstanceStats``: calls and, in a
timed run, the seconds of each ``process`` call) and the plan, and written once by the
driver (MPI rank 0) after the run; the original wrapped every PE in a timing proxy that
wrote a file per instance from each worker. Under ``--timing-dir`` (default ``timings``),
with ``P`` = ``--timing-prefix`` (default ``monitor``) and ``ID`` = ``--run-id``:

* ``P_shape_runID.json``, ``P_concrete_shape_runID.json``: abstract and concrete graph;
* ``P_<pe>_rank<r>_runID.csv`` (``pe_id,rank,count,total_secs,avg_secs``) and
  ``P_iterations_<pe>_rank<r>_runID.csv`` (``pe_id,rank,instance_id,iteration_index,
  iteration_secs``) per instance;
* ``P_summary_runID.csv`` per PE, ``P_instances_runID.csv`` per instance,
  ``P_iteration_timings_runID.csv`` every iteration, ``P_iteration_timings_summary_runID.csv``
  per instance from the iterations; percentiles interpolate linearly;
* ``P_abstract_graph_runID.png`` / ``P_concrete_graph_runID.png`` (Graphviz), or ``.svg``
  when Graphviz is not installed (drawn by ``dispel4py.drawing``).

A rank is an instance id; an instance id is ``<pe>@<rank>``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dispel4py.drawing import Drawing, graphviz, graphviz_missing, write_drawing
from dispel4py.engine.plan import Plan
from dispel4py.engine.result import InstanceStats, RunResult
from dispel4py.errors import UsageError
from dispel4py.observe.concrete import communication, concrete_drawing, concrete_edges

__all__ = [
    "TimingOptions",
    "add_timing_arguments",
    "abstract_shape",
    "concrete_shape",
    "percentile",
    "latency_stats",
    "safe_token",
    "write_abstract_shape",
    "write_run_files",
]

_log = logging.getLogger("dispel4py.timing")

# option dest -> (flag, what it names)
_FILES = {
    "summary_file": ("--summary-file", "timing summary per PE"),
    "instance_summary_file": ("--instance-summary-file", "timing summary per PE instance"),
    "iteration_summary_file": ("--iteration-summary-file", "every iteration of every instance"),
    "iteration_latency_summary_file": (
        "--iteration-latency-summary-file",
        "latency summary per instance, from the iterations",
    ),
    "shape_file": ("--shape-file", "abstract workflow shape JSON"),
    "concrete_shape_file": ("--concrete-shape-file", "concrete instance shape JSON"),
    "abstract_figure_file": (
        "--abstract-figure-file",
        "abstract graph figure (.png needs Graphviz, or .svg)",
    ),
    "concrete_figure_file": (
        "--concrete-figure-file",
        "concrete graph figure (.png needs Graphviz, or .svg)",
    ),
}


def add_timing_arguments(parser: Any) -> None:
    """The original's monitoring flags."""
    parser.add_argument(
        "--timing-dir", default="timings", help="folder of the timing files (default timings)"
    )
    parser.add_argument(
        "--timing-prefix", default="monitor", help="prefix of the file names (default monitor)"
    )
    parser.add_argument(
        "--run-id", dest="timing_run_id", default=None, help="run id in the file names (default: UTC time)"
    )
    for dest, (flag, what) in _FILES.items():
        parser.add_argument(flag, dest=dest, default=None, metavar="FILE", help=f"path of the {what}")
    parser.add_argument("--no-graph-figures", action="store_true", help="do not draw the graph figures")
    parser.add_argument(
        "--print-shape", action="store_true", help="log the abstract and concrete nodes, edges and order"
    )


def safe_token(value: Any) -> str:
    """``value`` with every character other than letters, digits, '.', '_', '-' made '_'."""
    token = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(value))
    return token.strip("._") or "unknown"


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


@dataclass(frozen=True)
class TimingOptions:
    directory: Path
    prefix: str
    run_id: str
    files: dict[str, str | None]
    figures: bool
    print_shape: bool

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TimingOptions:
        """Checked before the run: figure formats, and that the folder can be written."""
        run_id = options.get("timing_run_id") or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        timing = cls(
            directory=Path(options.get("timing_dir") or "timings"),
            prefix=str(options.get("timing_prefix") or "monitor"),
            run_id=safe_token(run_id),
            files={dest: options.get(dest) for dest in _FILES},
            figures=not options.get("no_graph_figures"),
            print_shape=bool(options.get("print_shape")),
        )
        if timing.figures:
            for dest in ("abstract_figure_file", "concrete_figure_file"):
                timing.figure_format(dest)
        timing._make_folders()
        return timing

    def path(self, dest: str, default_name: str) -> Path:
        """The explicit file of option ``dest`` (relative ones under the timing folder), or
        ``default_name`` in the timing folder."""
        explicit = self.files.get(dest)
        return self.directory / (explicit or default_name)

    def name(self, middle: str, suffix: str = "csv") -> str:
        return f"{self.prefix}_{middle}_run{self.run_id}.{suffix}"

    def figure_format(self, dest: str) -> str:
        explicit = self.files.get(dest)
        if explicit is None:
            return "png" if graphviz() is not None else "svg"
        fmt = Path(explicit).suffix.lower()[1:]
        if fmt not in ("png", "svg"):
            raise UsageError(f"{_FILES[dest][0]} {explicit}: a figure is .svg, or .png (with Graphviz)")
        if fmt == "png" and graphviz() is None:
            raise graphviz_missing(f"{_FILES[dest][0]} {explicit}")
        return fmt

    def _make_folders(self) -> None:
        folders = {("--timing-dir", self.directory)}
        for dest, explicit in self.files.items():
            if explicit and (self.figures or "figure" not in dest):
                folders.add((_FILES[dest][0], (self.directory / explicit).parent))
        for flag, folder in sorted(folders, key=lambda f: str(f[1])):
            blocked = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
            if blocked is not None:
                raise UsageError(f"{flag}: cannot create the folder {folder}: {blocked} is a file")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"{flag}: cannot create the folder {folder}: {exc.strerror or exc}") from exc
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UsageError(f"{flag}: cannot write in the folder {folder} (permission denied)")


# -- shapes ---------------------------------------------------------------------------
def abstract_shape(plan: Plan) -> dict[str, Any]:
    return {
        "nodes": sorted(plan.pes),
        "edges": [
            {"from": e.src, "to": e.dst, "from_connection": e.out, "to_connection": e.inp} for e in plan.edges
        ],
        "topological_order": list(plan.order),
    }


def concrete_shape(plan: Plan) -> dict[str, Any]:
    """Instances ``<pe>@<rank>`` and every path an item may take between them."""
    nodes = [
        {"instance_id": f"{pe}@{iid}", "pe_id": pe, "rank": iid, "worker": plan.worker_of(iid)}
        for pe in plan.order
        for iid in plan.instances[pe]
    ]
    edges = []
    for src, dst, edge in concrete_edges(plan):
        edges.append(
            {
                "from": f"{edge.src}@{src}",
                "to": f"{edge.dst}@{dst}",
                "from_pe_id": edge.src,
                "to_pe_id": edge.dst,
                "from_rank": src,
                "to_rank": dst,
                "from_connection": edge.out,
                "to_connection": edge.inp,
                "communication": communication(edge.grouping),
            }
        )
    return {
        "processes": {pe: list(iids) for pe, iids in plan.instances.items()},
        "nodes": sorted(nodes, key=lambda row: row["instance_id"]),
        "edges": edges,
        "topological_order": [f"{pe}@{iid}" for pe in plan.order for iid in plan.instances[pe]],
    }


def _shape_lines(kind: str, shape: dict[str, Any]) -> list[str]:
    nodes = [n["instance_id"] if isinstance(n, dict) else n for n in shape["nodes"]]
    return [
        f"{kind} nodes: {nodes}",
        f"{kind} edges: {[(e['from'], e['to']) for e in shape['edges']]}",
        f"{kind} topological order: {shape['topological_order']}",
    ]


# -- writing --------------------------------------------------------------------------
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


def _write_json(path: Path, flag: str, payload: dict[str, Any]) -> Path:
    return _write(path, flag, lambda f: json.dump(payload, f, indent=2))


def write_abstract_shape(timing: TimingOptions, plan: Plan) -> None:
    """Before the run, as the original: the abstract shape (and ``--print-shape``)."""
    shape = abstract_shape(plan)
    path = timing.path("shape_file", timing.name("shape", "json"))
    _write_json(path, "--shape-file", {"run_id": timing.run_id, **shape})
    _log.info("Timing monitor enabled for %d PEs (run_id=%s).", len(plan.pes), timing.run_id)
    if timing.print_shape:
        for line in _shape_lines("Abstract", shape):
            _log.info("%s", line)
    _log.info("Abstract workflow shape written to: %s", path)


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


def _figure(timing: TimingOptions, dest: str, middle: str, drawing: Drawing) -> Path:
    fmt = timing.figure_format(dest)
    path = timing.path(dest, timing.name(middle, fmt))
    write_drawing(drawing, path, fmt, _FILES[dest][0])
    return path


def write_run_files(
    timing: TimingOptions, plan: Plan, result: RunResult, abstract: Drawing | None, worker_word: str
) -> list[Path]:
    """After the run: every file but the abstract shape; returns their paths."""
    shape = concrete_shape(plan)
    written = [
        _write_json(
            timing.path("concrete_shape_file", timing.name("concrete_shape", "json")),
            "--concrete-shape-file",
            {"run_id": timing.run_id, **shape},
        )
    ]
    if timing.print_shape:
        for line in _shape_lines("Concrete", shape):
            _log.info("%s", line)
    _log.info("Concrete instance shape written to: %s", written[-1])
    rows = _instances(result.stats)
    _per_instance_files(timing, rows)
    for what, write in (
        ("Timing summary (per PE)", _pe_summary),
        ("Timing summary (per instance)", _instance_summary),
        ("Timing summary (per iteration)", _iteration_table),
        ("Timing latency summary (from iterations)", _iteration_summary),
    ):
        written.append(write(timing, rows))
        _log.info("%s written to: %s", what, written[-1])
    if timing.figures:
        figures = [("concrete_figure_file", "concrete_graph", concrete_drawing(plan, worker_word))]
        if abstract is not None:
            figures.insert(0, ("abstract_figure_file", "abstract_graph", abstract))
        for dest, middle, drawing in figures:
            written.append(_figure(timing, dest, middle, drawing))
            _log.info(
                "%s figure written to: %s",
                "Abstract workflow" if "abstract" in dest else "Concrete instance",
                written[-1],
            )
    return written
