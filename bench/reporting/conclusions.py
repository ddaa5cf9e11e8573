"""Do two tables folders of the same study reach the same conclusions? (e.g. the same generations scored by two
judges: docs/judges.md, "Does a conclusion depend on the judge?").

A conclusion is the verdict of a paired 95% CI: `better` / `worse` when it excludes 0 (in the steered
statistic's wanted direction or against it), `n.s.` when it holds 0, `undefined` when there is none. Two kinds:
every setting vs plain decoding (the per-setting tables' `<statistic>_vs_plain`, the statistic steering moves:
`tables.steering`), and every method vs RAD at matched fluency (`matched_fluency.csv`'s `vs_rad`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.reporting.tables import steering

SETTING_KEYS = ["table", "task", "top_k", "method", "beta"]
MATCHED_KEYS = ["task", "prompt_type", "top_k", "method", "metric", "level"]
WANTED = {"avg_max_toxicity": -1, "toxic_rate": -1, "positive_rate": 1}  # matched fluency's metrics


def verdict(lo, hi, sign: int) -> str:
    """`better` / `worse` / `n.s.` / `undefined` for a paired CI [lo, hi] of a Δ whose wanted sign is `sign`."""
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return "undefined"
    if not (math.isfinite(lo) and math.isfinite(hi)) or sign == 0:
        return "undefined"
    if lo > 0 or hi < 0:
        return "better" if (lo > 0) == (sign > 0) else "worse"
    return "n.s."


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BenchError(f"{path}: not a readable table CSV ({exc})") from exc


def setting_verdicts(tables_dir: Path) -> pd.DataFrame:
    """One row per steered setting of every per-setting table (toxicity*, sentiment*) in `tables_dir`."""
    rows = []
    for path in sorted(tables_dir.glob("*.csv")):
        if not path.stem.startswith(("toxicity", "sentiment")) or path.stem.endswith("_latency"):
            continue
        df = _read(path)
        if "method" not in df.columns:
            continue
        for _, r in df[df["method"] != "plain"].iterrows():
            stat, sign = steering(r)
            if stat is None or f"{stat}_vs_plain_lo" not in df.columns:
                continue
            rows.append(
                {
                    "kind": "vs plain",
                    "table": path.stem,
                    **{k: r[k] for k in SETTING_KEYS[1:]},
                    "statistic": stat,
                    "value": r[stat],
                    "delta": r[f"{stat}_vs_plain"],
                    "verdict": verdict(r[f"{stat}_vs_plain_lo"], r[f"{stat}_vs_plain_hi"], sign),
                }
            )
    return pd.DataFrame(rows)


def matched_verdicts(tables_dir: Path) -> pd.DataFrame:
    """One row per (method, level) of matched_fluency.csv other than RAD: its Δ vs RAD's verdict."""
    path = tables_dir / "matched_fluency.csv"
    if not path.is_file():
        return pd.DataFrame()
    df = _read(path)
    df = df[df["method"] != "rad"]
    rows = []
    for _, r in df.iterrows():
        sign = WANTED.get(r["metric"], 0)
        if r["metric"] == "positive_rate" and r.get("target") == "negative":
            sign = -1
        rows.append(
            {
                "kind": "vs RAD, matched fluency",
                "table": "matched_fluency",
                **{k: r[k] for k in MATCHED_KEYS},
                "statistic": r["metric"],
                "value": r["value"],
                "delta": r["vs_rad"],
                "verdict": verdict(r["vs_rad_lo"], r["vs_rad_hi"], sign),
            }
        )
    return pd.DataFrame(rows)


def compare_conclusions(a_dir: Path, b_dir: Path) -> pd.DataFrame:
    """Both folders' verdicts side by side (outer join: a row only one folder has is `missing` in the other),
    with `same` telling whether the verdict holds."""
    out = []
    for fn, keys in (
        (setting_verdicts, ["table", *SETTING_KEYS[1:], "statistic"]),
        (matched_verdicts, [*MATCHED_KEYS, "statistic"]),
    ):
        a, b = fn(a_dir), fn(b_dir)
        if a.empty and b.empty:
            continue
        kind = (a if not a.empty else b)["kind"].iloc[0]
        cols = [*keys, "value", "delta", "verdict"]
        a = a[cols] if not a.empty else pd.DataFrame(columns=cols)
        b = b[cols] if not b.empty else pd.DataFrame(columns=cols)
        m = a.merge(b, on=keys, how="outer", suffixes=("_a", "_b"))
        m.insert(0, "kind", kind)
        out.append(m)
    if not out:
        raise BenchError(f"{a_dir}, {b_dir}: no per-setting or matched-fluency tables to compare")
    df = pd.concat(out, ignore_index=True)
    for side in ("a", "b"):
        df[f"verdict_{side}"] = df[f"verdict_{side}"].fillna("missing")
    df["same"] = df["verdict_a"] == df["verdict_b"]
    return df


def summary_lines(df: pd.DataFrame, a_name: str, b_name: str) -> list[str]:
    """One line per kind (how many verdicts agree), then one per changed verdict."""
    lines = []
    for kind, part in df.groupby("kind", sort=False):
        lines.append(f"{kind}: {int(part['same'].sum())}/{len(part)} verdicts the same")
    for _, r in df[~df["same"]].iterrows():
        where = " ".join(
            f"{k}={r[k]}" for k in ("table", "task", "method", "beta", "level") if k in r and pd.notna(r[k])
        )
        lines.append(f"  changed: {where} {r['statistic']}: {a_name} {r['verdict_a']} -> {b_name} {r['verdict_b']}")
    return lines
