"""The scorer-agreement table (`bench agreement`): a CSV of every row and a Markdown table next to it."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from bench.reporting.format import fmt
from bench.utils.io import atomic_open

COLUMNS = ["scorer", "scorer_version", "reference", "n", "n_toxic", "spearman", "auc", "texts_per_s"]


def _cell(x) -> str:
    """3 decimals, or none for large numbers (texts/s); NaN as an empty cell."""
    return fmt(x, ".3f" if not isinstance(x, float) or math.isnan(x) or abs(x) < 100 else ".0f", nan="")


def write_tables(out: Path, rows: list[dict]) -> Path:
    """`out` (CSV, NaN as empty) and `out` with suffix .md; returns the Markdown path."""
    with atomic_open(out) as fh:  # csv rows end in "\n" (lineterminator)
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(r[k], float) and math.isnan(r[k]) else r[k]) for k in COLUMNS})
    md = out.with_suffix(".md")
    cols = [c for c in COLUMNS if c != "scorer_version"]
    with atomic_open(md) as fh:
        fh.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        for r in rows:
            fh.write("| " + " | ".join(_cell(r[c]) for c in cols) + " |\n")
    return md
