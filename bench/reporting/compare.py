"""Compare a run's tables with a reference (by default the committed ones), within the reference's CIs.

Bit-identical tables are expected only on the same machine and software; on another CPU, float round-off in
training and decoding moves some numbers (see README, "Reproducibility"). What matters then is whether a
rerun lands inside the reference's confidence intervals: this module says, per row and metric, whether a
value is identical, within the reference's 95% CI, or outside it.
"""

from __future__ import annotations

import io
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import DataError

# Columns that identify a row (a setting), when present; every other numeric column is a measurement.
KEY_COLUMNS = (
    "task",
    "family",
    "target",
    "prompt_type",
    "method",
    "parametrization",
    "beta",
    "top_k",
    "ppl_factor",
    "level",
    "centered",
    "n_prefixes",
    "batch_size",
    "new_tokens",
    "k",
)
VERDICTS = ("identical", "within_ci", "outside_ci", "differs_no_ci", "missing_row", "extra_row")


@dataclass
class Table:
    name: str
    frame: pd.DataFrame
    where: str


def read_table(path: Path) -> Table:
    try:
        return Table(path.stem, pd.read_csv(path), str(path))
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read as a CSV table ({exc})") from exc


def read_table_at_revision(path: Path, rev: str) -> Table:
    """A table as committed at git revision `rev` (the file's path relative to its repository)."""
    path = path.resolve()
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path.parent, capture_output=True, text=True)
    if top.returncode != 0:
        raise DataError(f"{path}: not inside a git checkout; pass the reference tables explicitly")
    rel = path.relative_to(Path(top.stdout.strip()).resolve()).as_posix()
    shown = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=top.stdout.strip(), capture_output=True)
    if shown.returncode != 0:
        raise DataError(f"{rel}: no such file at git revision {rev!r} ({shown.stderr.decode().strip()})")
    return Table(path.stem, pd.read_csv(io.BytesIO(shown.stdout)), f"{rev}:{rel}")


def key_columns(ref: pd.DataFrame, run: pd.DataFrame, keys: list[str] | None = None) -> list[str]:
    cols = keys or [c for c in KEY_COLUMNS if c in ref.columns and c in run.columns]
    missing = [c for c in cols if c not in ref.columns or c not in run.columns]
    if not cols or missing:
        raise DataError(f"tables share no key columns {missing or list(KEY_COLUMNS)} to match rows on")
    return cols


def _measurements(ref: pd.DataFrame, run: pd.DataFrame, keys: list[str]) -> list[str]:
    bounds = {c for c in ref.columns if c.endswith(("_lo", "_hi"))}
    return [
        c
        for c in ref.columns
        if c in run.columns
        and c not in keys
        and c not in bounds
        and pd.api.types.is_numeric_dtype(ref[c])
        and pd.api.types.is_numeric_dtype(run[c])
    ]


def _verdict(ref_v: float, run_v: float, lo: float | None, hi: float | None) -> str:
    if (math.isnan(ref_v) and math.isnan(run_v)) or ref_v == run_v:
        return "identical"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "differs_no_ci"
    return "within_ci" if lo <= run_v <= hi else "outside_ci"


def compare_tables(ref: Table, run: Table, keys: list[str] | None = None) -> pd.DataFrame:
    """One row per (setting, measurement) that is not identical, plus rows present on one side only."""
    keys = key_columns(ref.frame, run.frame, keys)
    for side in (ref, run):
        dup = side.frame.duplicated(keys)
        if dup.any():
            raise DataError(f"{side.where}: rows are not unique on the key columns {keys}")
    # consolidated copies: wide tables read column by column otherwise make merge warn about fragmentation
    merged = ref.frame.copy().merge(run.frame.copy(), on=keys, how="outer", suffixes=("@ref", "@run"), indicator=True)
    out = []
    for _, row in merged.iterrows():
        setting = {k: row[k] for k in keys}
        if row["_merge"] != "both":
            out.append(
                {
                    "table": ref.name,
                    **setting,
                    "metric": "",
                    "verdict": "missing_row" if row["_merge"] == "left_only" else "extra_row",
                }
            )
            continue
        for col in _measurements(ref.frame, run.frame, keys):
            ref_v, run_v = float(row[f"{col}@ref"]), float(row[f"{col}@run"])
            lo = float(row[f"{col}_lo@ref"]) if f"{col}_lo" in ref.frame.columns else None
            hi = float(row[f"{col}_hi@ref"]) if f"{col}_hi" in ref.frame.columns else None
            verdict = _verdict(ref_v, run_v, lo, hi)
            if verdict != "identical":
                out.append(
                    {
                        "table": ref.name,
                        **setting,
                        "metric": col,
                        "reference": ref_v,
                        "run": run_v,
                        "difference": run_v - ref_v,
                        "ref_lo": lo,
                        "ref_hi": hi,
                        "verdict": verdict,
                    }
                )
    return pd.DataFrame(
        out, columns=["table", *keys, "metric", "reference", "run", "difference", "ref_lo", "ref_hi", "verdict"]
    )


def failed(report: pd.DataFrame) -> bool:
    """A comparison fails on a value outside the reference's CI or a row present on one side only."""
    return bool(report["verdict"].isin(["outside_ci", "missing_row", "extra_row"]).any())


# Columns (and whole tables) that measure wall-clock time: they differ between any two runs, interrupted or not.
TIMING_COLUMNS = {"reward_models": ("train_seconds",), "scorer_agreement": ("texts_per_s",)}
TIMING_TABLES = ("latency", "cost")


def comparable_table(path: str | Path) -> bytes | None:
    """A table's bytes for run-vs-run identity: a CSV with timing columns is rewritten without them; the other
    formats of such a table (the same numbers, formatted with the timing) and timing tables give None."""
    import csv

    path = Path(path)
    if path.stem in TIMING_TABLES:
        return None
    drop = TIMING_COLUMNS.get(path.stem)
    if not drop:
        return path.read_bytes()
    if path.suffix != ".csv":
        return None
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = io.StringIO()
    fields = [c for c in (rows[0] if rows else {}) if c not in drop]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
