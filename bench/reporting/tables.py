"""Collect the per-run score summaries into the papers' tables: a tidy CSV plus Markdown and LaTeX.

One summary CSV per (generation task, method, beta, k) comes out of `bench score`; the tables put one row
per (task, method, beta, k) with every metric and its bootstrap CI, grouped the way the RAD / ARM papers
report them (toxicity: average max toxicity, toxic rate, PPL, dist-n; sentiment: positive rate per target
direction and prompt type, PPL, dist-n).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from bench.errors import DataError
from bench.utils.io import atomic_open

log = logging.getLogger(__name__)

REQUIRED = ("task", "method", "beta", "top_k")
KEY = ("task", "method", "beta", "top_k")
PLAIN = "plain"  # decoding without a reward model; every other method is a registered parametrization


def method_order() -> list[str]:
    """Plain first, then the parametrizations in registry order."""
    from bench.rewards.registry import names

    return [PLAIN] + names()


def method_label(method: str) -> str:
    from bench.rewards.registry import display_name

    return "Plain (top-k)" if method == PLAIN else display_name(method)


SENTIMENT_TASK = re.compile(r"^sentiment-to-(?P<target>[A-Za-z]+)-from-(?P<prompts>[A-Za-z]+)$")
CI_NOTE = "± is the half-width of the 95% bootstrap confidence interval."


def parse_task(task: str) -> tuple[str, str | None, str | None]:
    """`toxicity` -> (toxicity, None, None); `sentiment-to-positive-from-neutral` -> (sentiment, positive, neutral)."""
    m = SENTIMENT_TASK.match(task)
    if m:
        return "sentiment", m["target"], m["prompts"]
    return task, None, None


def load_summaries(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate summary CSVs; add family / target / prompt_type; refuse missing columns and duplicate runs."""
    if not paths:
        raise DataError("no summary CSVs given (expected one or more files from `bench score --out-summary`)")
    frames = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: summary CSV not found")
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV ({exc})") from exc
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected a `bench score` summary with {list(REQUIRED)}")
        if df.empty:
            raise DataError(f"{path}: no rows; expected one summary row")
        df["source_file"] = str(path)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True, sort=False)
    df["task"] = df["task"].astype(str)
    df["method"] = df["method"].astype(str)
    df["beta"] = pd.to_numeric(df["beta"], errors="coerce").fillna(0.0)
    df["top_k"] = pd.to_numeric(df["top_k"], errors="coerce").astype("Int64")
    parsed = df["task"].map(parse_task)
    df["family"] = [p[0] for p in parsed]
    df["target"] = [p[1] for p in parsed]
    df["prompt_type"] = [p[2] for p in parsed]
    dup = df[df.duplicated(list(KEY), keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        files = sorted(dup[(dup[list(KEY)] == first[list(KEY)]).all(axis=1)]["source_file"])
        raise DataError(
            f"duplicate run task={first['task']} method={first['method']} beta={first['beta']:g} "
            f"top_k={first['top_k']} in {files}; expected one summary per run"
        )
    return sort_runs(df)


def sort_runs(df: pd.DataFrame) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(method_order())}
    key = df["method"].map(lambda m: order.get(m, len(order)))
    df = df.assign(_m=key, _t=df["target"].fillna(""), _p=df["prompt_type"].fillna(""))
    df = df.sort_values(["family", "_t", "_p", "top_k", "_m", "method", "beta"], kind="stable")
    return df.drop(columns=["_m", "_t", "_p"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ formatting
def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def fmt_ci(row: pd.Series, col: str, digits: int, scale: float = 1.0, pm: str = " ± ") -> str:
    """`value ± half-width` of the CI in `col_lo` / `col_hi`; just the value when the CI is missing."""
    v = _num(row.get(col))
    if v is None:
        return "–"
    lo, hi = _num(row.get(f"{col}_lo")), _num(row.get(f"{col}_hi"))
    s = f"{v * scale:.{digits}f}"
    if lo is not None and hi is not None:
        s += f"{pm}{(hi - lo) / 2 * scale:.{digits}f}"
    return s


def fmt_beta(row: pd.Series) -> str:
    return "–" if row["method"] == PLAIN else f"{float(row['beta']):g}"


@dataclass(frozen=True)
class Column:
    header: str
    fmt: Callable[[pd.Series, str], str]  # (row, plus-minus separator) -> cell


def _ci(col: str, digits: int, scale: float = 1.0) -> Callable[[pd.Series, str], str]:
    return lambda row, pm: fmt_ci(row, col, digits, scale, pm)


COMMON_LEFT = [
    Column("Method", lambda r, pm: method_label(r["method"])),
    Column("β", lambda r, pm: fmt_beta(r)),
    Column("k", lambda r, pm: "–" if pd.isna(r["top_k"]) else str(int(r["top_k"]))),
]
DIST = [Column(f"Dist-{n}", _ci(f"dist{n}", 3)) for n in (1, 2, 3)]
LAYOUTS: dict[str, list[Column]] = {
    "toxicity": COMMON_LEFT
    + [
        Column("Avg. max toxicity", _ci("avg_max_toxicity", 3)),
        Column("Toxic rate", _ci("toxic_rate", 3)),
        Column("PPL", _ci("ppl", 1)),
    ]
    + DIST,
    "sentiment": [
        Column("Target", lambda r, pm: str(r["target"])),
        Column("Prompts", lambda r, pm: str(r["prompt_type"])),
    ]
    + COMMON_LEFT
    + [Column("Positive rate (%)", _ci("positive_rate", 1, 100.0)), Column("PPL", _ci("ppl", 1))]
    + DIST,
}
GENERIC = COMMON_LEFT + [
    Column("Avg. max toxicity", _ci("avg_max_toxicity", 3)),
    Column("Positive rate (%)", _ci("positive_rate", 1, 100.0)),
    Column("PPL", _ci("ppl", 1)),
] + DIST


def _groups(df: pd.DataFrame) -> list[int]:
    """Row indices where a new (target, prompt type, k) block starts: rules between blocks in LaTeX."""
    keys = list(zip(df["target"].fillna(""), df["prompt_type"].fillna(""), df["top_k"].astype(str)))
    return [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]


def format_table(df: pd.DataFrame, family: str, pm: str = " ± ") -> pd.DataFrame:
    cols = LAYOUTS.get(family, GENERIC)
    rows = [[c.fmt(r, pm) for c in cols] for _, r in df.iterrows()]
    return pd.DataFrame(rows, columns=[c.header for c in cols])


def to_markdown(df: pd.DataFrame, family: str) -> str:
    t = format_table(df, family)
    numeric = [not h in ("Method", "Target", "Prompts") for h in t.columns]
    lines = ["| " + " | ".join(t.columns) + " |", "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    for row in t.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + f"\n\n{CI_NOTE}\n"


_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(s: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in s)


def to_latex(df: pd.DataFrame, family: str) -> str:
    """A booktabs tabular (no float environment, so papers can \\input it inside their own table)."""
    t = format_table(df, family, pm=" PLUSMINUS ")
    headers = [tex_escape(h).replace("β", r"$\beta$").replace("(%)", r"(\%)") for h in t.columns]
    align = "".join("l" if h in ("Method", "Target", "Prompts") else "r" for h in t.columns)
    breaks = set(_groups(df))
    out = [f"% {CI_NOTE}", rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(headers) + r" \\", r"\midrule"]
    for i, row in enumerate(t.itertuples(index=False)):
        if i in breaks:
            out.append(r"\midrule")
        cells = [tex_escape(str(v)).replace(" PLUSMINUS ", r" $\pm$ ").replace("–", "--") for v in row]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def write_tables(df: pd.DataFrame, out_dir: str | Path, formats: Sequence[str] = ("csv", "md", "tex")) -> list[Path]:
    """One table per task family (toxicity, sentiment, ...) in each format; returns the files written."""
    out_dir = Path(out_dir)
    written = []
    for family, part in df.groupby("family", sort=True):
        part = sort_runs(part)
        for ext in formats:
            path = out_dir / f"{family}.{ext}"
            with atomic_open(path) as fh:
                if ext == "csv":
                    part.to_csv(fh, index=False, lineterminator="\n")
                elif ext == "md":
                    fh.write(to_markdown(part, family))
                elif ext == "tex":
                    fh.write(to_latex(part, family))
                else:
                    raise DataError(f"unknown table format {ext!r}; expected csv, md or tex")
            written.append(path)
            log.info("wrote %s (%d rows)", path, len(part))
    return written
