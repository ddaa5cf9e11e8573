"""What a run cost: Snakemake's per-job `benchmark:` records summed per stage (rule), against what each job asked.

A record (`{work_dir}/benchmarks/<rule>/<wildcards>.tsv`, or `<rule>.tsv` for a rule without wildcards) is
Snakemake's TSV: `s` (wall seconds), `max_rss` (peak resident memory, MB), `cpu_time` (seconds), ... A job
shorter than Snakemake's first memory sample has `NA` there: it is counted (`mem_samples`), never read as 0.
A job is flagged when its peak memory or wall time used more than `threshold` (80 %) of its request: the
next, larger run of the same config risks the scheduler killing it.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from bench.errors import DataError
from bench.reporting.format import fmt

THRESHOLD = 0.8
COLUMNS = (
    "stage",
    "jobs",
    "wall_s",
    "wall_s_max",
    "cpu_s",
    "max_rss_mb",
    "mem_samples",
    "mem_mb",
    "runtime_min",
    "mem_used",
    "runtime_used",
    "over",
    "flagged",
)


@dataclass(frozen=True)
class JobRecord:
    stage: str  # the rule
    job: str  # <rule>/<wildcards> (the record's path below the benchmarks folder, without .tsv)
    wall_s: float
    max_rss_mb: float | None  # None: the job ended before Snakemake's first memory sample
    cpu_s: float | None


def _number(value: str, path: Path, line: int, column: str, optional: bool) -> float | None:
    if optional and value in ("NA", "-", ""):
        return None
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x < 0:
        raise DataError(
            f"{path}, line {line}: column {column!r} is {value!r}; expected a finite number >= 0"
            + (" or NA" if optional else "")
        )
    return x


def read_record(path: Path, root: Path) -> JobRecord:
    """One job's benchmark TSV (the last row: Snakemake writes one per repeat)."""
    rel = path.relative_to(root).with_suffix("").as_posix()
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines(), delimiter="\t"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read a benchmark record ({exc})") from exc
    if len(rows) < 2 or "s" not in rows[0] or "max_rss" not in rows[0]:
        raise DataError(
            f"{path}, line 1: expected Snakemake's benchmark TSV (a header with s, max_rss, ... and one row per run)"
        )
    head, last = rows[0], rows[-1]
    if len(last) != len(head):
        raise DataError(f"{path}, line {len(rows)}: {len(last)} fields; the header has {len(head)}")
    row = dict(zip(head, last))
    return JobRecord(
        stage=rel.split("/", 1)[0],
        job=rel,
        wall_s=_number(row["s"], path, len(rows), "s", optional=False),
        max_rss_mb=_number(row["max_rss"], path, len(rows), "max_rss", optional=True),
        cpu_s=_number(row.get("cpu_time", "NA"), path, len(rows), "cpu_time", optional=True),
    )


def read_records(folder: str | Path) -> list[JobRecord]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"{folder}: no benchmarks folder; expected the run's work_dir/benchmarks (written by "
            "Snakemake's benchmark: records)"
        )
    return [read_record(p, folder) for p in sorted(folder.rglob("*.tsv")) if not p.name.startswith(".")]


def parse_request(text: str) -> tuple[str, int, int]:
    """`RULE=MEM_MB,RUNTIME_MIN` (what the Snakefile passes for every rule) -> (rule, mem_mb, runtime_min)."""
    try:
        rule, values = text.split("=", 1)
        mem, runtime = (int(v) for v in values.split(","))
    except ValueError:
        raise DataError(f"--request {text!r}: expected RULE=MEM_MB,RUNTIME_MIN (integers)") from None
    if mem < 1 or runtime < 1 or not rule:
        raise DataError(f"--request {text!r}: expected a rule name and MEM_MB, RUNTIME_MIN >= 1")
    return rule, mem, runtime


def cost_rows(
    records: list[JobRecord], requests: dict[str, tuple[int, int]], threshold: float = THRESHOLD
) -> list[dict]:
    """One row per stage: jobs, summed and longest wall time, CPU time, the largest peak memory, the request and
    the largest share of it any job used, and the jobs over `threshold` of memory or runtime."""
    rows = []
    for stage in sorted({r.stage for r in records}):
        jobs = [r for r in records if r.stage == stage]
        rss = [r.max_rss_mb for r in jobs if r.max_rss_mb is not None]
        mem, runtime = requests.get(stage, (None, None))
        over = []
        mem_used = runtime_used = None
        if mem is not None:
            mem_used = max((x / mem for x in rss), default=None)
            runtime_used = max(r.wall_s / (60.0 * runtime) for r in jobs)
            over = [
                r.job
                for r in jobs
                if (r.max_rss_mb is not None and r.max_rss_mb > threshold * mem)
                or r.wall_s > threshold * 60.0 * runtime
            ]
        rows.append(
            {
                "stage": stage,
                "jobs": len(jobs),
                "wall_s": sum(r.wall_s for r in jobs),
                "wall_s_max": max(r.wall_s for r in jobs),
                "cpu_s": sum(r.cpu_s for r in jobs if r.cpu_s is not None),
                "max_rss_mb": max(rss) if rss else None,
                "mem_samples": len(rss),
                "mem_mb": mem,
                "runtime_min": runtime,
                "mem_used": mem_used,
                "runtime_used": runtime_used,
                "over": len(over) if mem is not None else None,
                "flagged": ";".join(over),
            }
        )
    return rows


def _cell(value) -> str:
    """CSV cell: floats to 4 significant digits, a missing value (no request, no memory sample) left empty."""
    return "" if value is None else fmt(value, ".4g")


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([_cell(row[c]) for c in COLUMNS] for row in rows)
    return out.getvalue()


def to_markdown(rows: list[dict], threshold: float = THRESHOLD) -> str:
    pct = lambda x: "n/a" if x is None else f"{100 * x:.0f} %"  # noqa: E731
    out = [
        "| stage | jobs | wall (sum) | wall (max) | CPU time | peak memory | requested | memory used | "
        "runtime used | over |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        req = "n/a" if r["mem_mb"] is None else f"{r['mem_mb']} MB, {r['runtime_min']} min"
        peak = "n/a" if r["max_rss_mb"] is None else f"{r['max_rss_mb']:.0f} MB"
        if r["mem_samples"] < r["jobs"] and r["max_rss_mb"] is not None:
            peak += f" ({r['mem_samples']}/{r['jobs']} sampled)"
        flag = "" if r["over"] is None else (f"**{r['over']}**" if r["over"] else "0")
        out.append(
            f"| {r['stage']} | {r['jobs']} | {_duration(r['wall_s'])} | {_duration(r['wall_s_max'])} | "
            f"{_duration(r['cpu_s'])} | {peak} | {req} | {pct(r['mem_used'])} | {pct(r['runtime_used'])} | "
            f"{flag} |"
        )
    total = sum(r["wall_s"] for r in rows)
    out += [
        "",
        f"{sum(r['jobs'] for r in rows)} jobs, {_duration(total)} of job wall time in all. "
        f"`over`: jobs whose peak memory or wall time exceeded {100 * threshold:.0f} % of their request "
        "(config `resources:`); memory n/a: the job ended before Snakemake's first memory sample.",
    ]
    flagged = [(r["stage"], j) for r in rows for j in r["flagged"].split(";") if j]
    if flagged:
        out += ["", "Over the threshold: " + ", ".join(f"`{j}`" for _, j in flagged)]
    return "\n".join(out) + "\n"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
