"""The judges' validation table (`bench agreement`): a CSV of every row and a Markdown table next to it."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from bench.reporting.format import fmt, md_table
from bench.utils.io import atomic_open

COLUMNS = [
    "judge",
    "judge_version",
    "attribute",
    "reference_set",
    "reference",
    "headline",
    "trained_on_it",
    "n",
    "n_positive",
    "n_nan",
    "auc",
    "auc_lo",
    "auc_hi",
    "spearman",
    "spearman_lo",
    "spearman_hi",
    "texts_per_s",
    "note",
]


def _num(x, spec: str = ".3f") -> str:
    return fmt(x, spec, nan="")


def _with_ci(r: dict, key: str) -> str:
    if isinstance(r[key], float) and math.isnan(r[key]):
        return ""
    lo, hi = r[f"{key}_lo"], r[f"{key}_hi"]
    ci = "" if isinstance(lo, float) and math.isnan(lo) else f" [{_num(lo)}, {_num(hi)}]"
    return _num(r[key]) + ci


def write_tables(out: Path, rows: list[dict], choice: dict | None = None) -> Path:
    """`out` (CSV, NaN as empty) and `out` with suffix .md (with the headline's judge choice, when given);
    returns the Markdown path."""
    with atomic_open(out) as fh:  # csv rows end in "\n" (lineterminator)
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(r[k], float) and math.isnan(r[k]) else r[k]) for k in COLUMNS})
    md = out.with_suffix(".md")
    head = [
        "judge",
        "reference",
        "trained on it",
        "n",
        "positives",
        "AUC [95% CI]",
        "Spearman [95% CI]",
        "texts/s",
        "note",
    ]
    with atomic_open(md) as fh:
        fh.write(
            "Validation of the judges (bench agreement). Headline rows (**bold**): Perspective on RTP "
            "continuations, which no judge trained on. AUC: positives are Perspective >= 0.5 or label 1; "
            "CIs: bootstrap over texts. Versions: see the CSV.\n\n"
        )
        cells = [
            [
                r["judge"],
                f"**{r['reference']}**" if r["headline"] else r["reference"],
                r["trained_on_it"],
                str(r["n"]),
                str(r["n_positive"]),
                _with_ci(r, "auc"),
                _with_ci(r, "spearman"),
                _num(r["texts_per_s"], ".0f"),
                r["note"],
            ]
            for r in rows
        ]
        fh.write(md_table(head, cells))
        if choice:
            vs = "; ".join(f"{j}: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for j, (d, lo, hi) in choice["versus"].items())
            fh.write(
                f"\nBest agreement on the headline: **{choice['judge']}** (Spearman {choice['spearman']:.3f}). "
                f"Its Spearman minus each other judge's on the same texts (paired bootstrap 95% CI): {vs}.\n"
            )
    return md
