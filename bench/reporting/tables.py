"""Collect the per-run score summaries into the papers' tables: a tidy CSV plus Markdown and LaTeX.

One summary CSV per (generation task, method, beta, k) comes out of `bench score`; the tables put one row
per (task, method, beta, k) with every metric and its bootstrap CI, grouped the way the RAD / ARM papers
report them (toxicity: average max toxicity, toxic rate, PPL, dist-n; sentiment: positive rate per target
direction and prompt type, PPL, dist-n). Given the runs' per-continuation scores as well, each row also gets
paired-bootstrap differences to plain decoding and to RAD at the same beta, and `matched_fluency` compares the
methods at fixed perplexity levels (`bench.metrics.comparisons`). `add_flags` marks the rows where steering
backfires (paired CI vs plain excludes 0 in the wrong direction) or a beta sweep gets worse as beta grows
(paired CI vs the next smaller beta); `flags.{csv,md}` lists them (docs/challenging.md). `reward_models` tabulates the trained reward
models' `train_summary.json`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import DataError
from bench.reporting.format import md_table
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
    """A parametrization's display name; `<parametrization>+<rule>` (a non-default reward rule) adds the rule."""
    from bench.rewards.registry import display_name

    if method == PLAIN:
        return "Plain (top-k)"
    base, _, rule = method.partition("+")
    return display_name(base) + (f" ({rule})" if rule else "")


SENTIMENT_TASK = re.compile(r"^sentiment-to-(?P<target>[A-Za-z]+)-from-(?P<prompts>[A-Za-z]+)$")
CI_NOTE = "± is the half-width of the 95% bootstrap confidence interval."
PAIRED_NOTE = (
    "Δ: difference to plain decoding / to RAD at the same β with its paired-bootstrap 95% CI "
    "(same resampled prompts for both settings); * marks a CI that excludes 0."
)


def parse_task(task: str) -> tuple[str, str | None, str | None]:
    """`toxicity` -> (toxicity, None, None); `sentiment-to-positive-from-neutral` -> (sentiment, positive, neutral).

    Any other name is its own family (own table), e.g. `toxicity-challenging` (a toxicity prompt set)."""
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
            raise DataError(
                f"{path}: missing column(s) {missing}; expected a `bench score` summary with {list(REQUIRED)}"
            )
        if df.empty:
            raise DataError(f"{path}: no rows; expected one summary row")
        check_summary_keys(df, path)
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


def check_summary_keys(df: pd.DataFrame, path: str | Path) -> None:
    """The run's key (task, method, beta, k) is what rows are grouped and paired by: a blank task or method, or a
    beta / k that is not a number, is refused naming the file and row (CSV line), not read as NaN or 0."""
    for i, row in enumerate(df.itertuples(index=False), start=2):
        r = row._asdict()
        for col in ("task", "method"):
            v = r[col]
            if not isinstance(v, str) or not v.strip():
                hint = " (generated without `bench generate --task`?)" if col == "task" else ""
                raise DataError(f"{path}: line {i}: column '{col}' is blank; expected a non-blank name{hint}")
        beta = pd.to_numeric(pd.Series([r["beta"]]), errors="coerce").iloc[0]
        if pd.isna(beta) or not math.isfinite(beta) or beta < 0:
            raise DataError(f"{path}: line {i}: column 'beta' = {r['beta']!r}; expected a finite number >= 0")
        k = pd.to_numeric(pd.Series([r["top_k"]]), errors="coerce").iloc[0]
        if pd.isna(k) or k < 1 or k != int(k):
            raise DataError(f"{path}: line {i}: column 'top_k' = {r['top_k']!r}; expected an integer >= 1")


def attach_scores(df: pd.DataFrame, summaries: Sequence[str | Path], scores: Sequence[str | Path]) -> pd.DataFrame:
    """Column `scores_file`: the per-continuation scores of each run (`scores[i]` belongs to `summaries[i]`)."""
    if len(scores) != len(summaries):
        raise DataError(
            f"--scores has {len(scores)} files for {len(summaries)} summaries; expected one per summary, "
            "in the same order"
        )
    by_summary = {str(Path(a)): str(b) for a, b in zip(summaries, scores)}
    return df.assign(scores_file=[by_summary[str(Path(f))] for f in df["source_file"]])


def _task_groups(df: pd.DataFrame):
    """(task, k) blocks: the runs that share prompts, seeds and plain decoding."""
    return df.groupby(["task", "top_k"], sort=False, dropna=False)


def _read_runs(part: pd.DataFrame) -> list:
    from bench.metrics.comparisons import read_scores

    return [read_scores(p) for p in part["scores_file"]]


def add_paired_columns(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """`{stat}_vs_plain[_lo,_hi]` and `{stat}_vs_rad[_lo,_hi]`: paired bootstrap differences per run."""
    from bench.metrics.comparisons import paired_differences

    df = df.copy()
    for _, part in _task_groups(df):
        keys = part[["method", "beta"]].to_dict("records")
        for idx, cols in zip(part.index, paired_differences(keys, _read_runs(part), n_boot, seed)):
            for col, value in cols.items():
                df.loc[idx, col] = value
    return df


def matched_fluency_table(df: pd.DataFrame, levels: Sequence[float], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (task, k, method, metric, PPL level) from `bench.metrics.comparisons.matched_fluency`."""
    from bench.metrics.comparisons import matched_fluency

    rows = []
    for (task, k), part in _task_groups(df):
        keys = part[["method", "beta"]].to_dict("records")
        for row in matched_fluency(keys, _read_runs(part), levels, n_boot, seed):
            fam, target, ptype = parse_task(str(task))
            rows.append({"task": task, "family": fam, "target": target, "prompt_type": ptype, "top_k": k, **row})
    out = pd.DataFrame(rows)
    if out.empty:  # the header still names the columns
        return pd.DataFrame(
            columns=[
                "task",
                "family",
                "target",
                "prompt_type",
                "top_k",
                "method",
                "metric",
                "level",
                "ppl_level",
                "betas",
                "value",
                "value_lo",
                "value_hi",
                "boot_defined",
                "vs_rad",
                "vs_rad_lo",
                "vs_rad_hi",
                "vs_rule_ref",
                "vs_rule_ref_lo",
                "vs_rule_ref_hi",
                "reason",
            ]
        )
    order = {m: i for i, m in enumerate(method_order())}
    out = out.assign(_m=out["method"].map(lambda m: order.get(m, len(order))))
    out = out.sort_values(["family", "task", "top_k", "metric", "level", "_m", "method"], kind="stable")
    return out.drop(columns="_m").reset_index(drop=True)


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


def fmt_diff(row: pd.Series, col: str, digits: int, scale: float = 1.0) -> str:
    """`+0.012 [-0.010, +0.035]` (difference and its 95% CI), `*` when the CI excludes 0; `–` when absent."""
    v = _num(row.get(col))
    if v is None:
        return "–"
    lo, hi = _num(row.get(f"{col}_lo")), _num(row.get(f"{col}_hi"))
    s = f"{v * scale:+.{digits}f}"
    if lo is not None and hi is not None:
        s += f" [{lo * scale:+.{digits}f}, {hi * scale:+.{digits}f}]" + ("*" if lo > 0 or hi < 0 else "")
    return s


def fmt_beta(row: pd.Series) -> str:
    return "–" if row["method"] == PLAIN else f"{float(row['beta']):g}"


@dataclass(frozen=True)
class Column:
    header: str
    fmt: Callable[[pd.Series, str], str]  # (row, plus-minus separator) -> cell


def _ci(col: str, digits: int, scale: float = 1.0) -> Callable[[pd.Series, str], str]:
    return lambda row, pm: fmt_ci(row, col, digits, scale, pm)


def _diff(col: str, digits: int, scale: float = 1.0) -> Callable[[pd.Series, str], str]:
    return lambda row, pm: fmt_diff(row, col, digits, scale)


def _paired(stat: str, short: str, digits: int, scale: float = 1.0) -> list[Column]:
    """Compact paired columns of the table's main statistic (shown only when the CSV has them)."""
    return [
        Column(f"Δ{short} vs plain", _diff(f"{stat}_vs_plain", digits, scale)),
        Column(f"Δ{short} vs RAD", _diff(f"{stat}_vs_rad", digits, scale)),
    ]


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
        Column("PPL (geo.)", _ci("ppl_gmean", 1)),
    ]
    + DIST
    + _paired("avg_max_toxicity", " tox.", 3),
    "sentiment": [
        Column("Target", lambda r, pm: str(r["target"])),
        Column("Prompts", lambda r, pm: str(r["prompt_type"])),
    ]
    + COMMON_LEFT
    + [
        Column("Positive rate (%)", _ci("positive_rate", 1, 100.0)),
        Column("PPL", _ci("ppl", 1)),
        Column("PPL (geo.)", _ci("ppl_gmean", 1)),
    ]
    + DIST
    + _paired("positive_rate", " pos. (pts)", 1, 100.0),
}
GENERIC = (
    COMMON_LEFT
    + [
        Column("Avg. max toxicity", _ci("avg_max_toxicity", 3)),
        Column("Positive rate (%)", _ci("positive_rate", 1, 100.0)),
        Column("PPL", _ci("ppl", 1)),
        Column("PPL (geo.)", _ci("ppl_gmean", 1)),
    ]
    + DIST
)


# ------------------------------------------------------------------------------------------ backfire flags
STEERED_STAT = {"toxicity": "avg_max_toxicity", "positive": "positive_rate"}  # steered attribute -> its statistic
FLAG_MARK = "⚠ "
FLAG_NOTE = (
    "⚠ backfire: the Δ vs plain of the steered statistic has a 95% CI that excludes 0 in the wrong "
    "direction (more toxic when steering away, less positive when steering toward); ⚠ non-monotone: "
    "worse than the same method at the next smaller β (paired 95% CI excludes 0)."
)


def steering(row: pd.Series) -> tuple[str | None, int]:
    """(statistic, wanted sign): the statistic steering moves and -1 (should fall) / +1 (should rise).

    From the summary's `attribute` / `direction` (written by `bench generate`); a summary without them falls
    back to the task name (toxicity*: away; sentiment-to-<target>: toward positive when target is positive)."""
    attr, direction = row.get("attribute"), row.get("direction")
    if isinstance(attr, str) and attr in STEERED_STAT and direction in ("away", "toward"):
        return STEERED_STAT[attr], (-1 if direction == "away" else 1)
    if str(row.get("family", "")).startswith("toxicity"):
        return "avg_max_toxicity", -1
    if row.get("family") == "sentiment" and row.get("target") in ("positive", "negative"):
        return "positive_rate", (1 if row["target"] == "positive" else -1)
    return None, 0


def _wrong_way(row: pd.Series, col: str, sign: int) -> bool:
    lo, hi = _num(row.get(f"{col}_lo")), _num(row.get(f"{col}_hi"))
    if lo is None or hi is None or sign == 0:
        return False
    return lo > 0 if sign < 0 else hi < 0


def add_flags(df: pd.DataFrame) -> pd.DataFrame:
    """Boolean columns `backfire` and `non_monotone` (needs the paired columns of `add_paired_columns`)."""
    backfire, non_monotone = [], []
    for _, r in df.iterrows():
        stat, sign = steering(r)
        steered = r["method"] != PLAIN and stat is not None
        backfire.append(steered and _wrong_way(r, f"{stat}_vs_plain", sign))
        non_monotone.append(steered and _wrong_way(r, f"{stat}_vs_prev", sign))
    return df.assign(backfire=backfire, non_monotone=non_monotone)


def flag_text(row: pd.Series) -> str:
    names = [n for n, col in (("backfire", "backfire"), ("non-monotone", "non_monotone")) if bool(row.get(col))]
    return FLAG_MARK + ", ".join(names) if names else ""


FLAG_COLUMN = Column("Flag", lambda r, pm: flag_text(r))


def flags_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per flag: table (family), task, k, method, beta, flag, statistic, reference, delta [lo, hi]."""
    rows = []
    for _, r in df.iterrows():
        stat, _ = steering(r)
        for flag, col, ref in (("backfire", "backfire", "plain"), ("non-monotone", "non_monotone", "prev")):
            if not bool(r.get(col)):
                continue
            if ref == "prev":
                same = df[
                    (df["task"] == r["task"])
                    & (df["top_k"] == r["top_k"])
                    & (df["method"] == r["method"])
                    & (df["beta"] < r["beta"])
                ]
                ref = f"beta {same['beta'].max():g}"
            c = f"{stat}_vs_{'plain' if ref == 'plain' else 'prev'}"
            rows.append(
                {
                    "table": r["family"],
                    "task": r["task"],
                    "top_k": r["top_k"],
                    "method": r["method"],
                    "beta": r["beta"],
                    "flag": flag,
                    "statistic": stat,
                    "reference": ref,
                    "delta": r[c],
                    "delta_lo": r[f"{c}_lo"],
                    "delta_hi": r[f"{c}_hi"],
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "table",
            "task",
            "top_k",
            "method",
            "beta",
            "flag",
            "statistic",
            "reference",
            "delta",
            "delta_lo",
            "delta_hi",
        ],
    )


def flags_markdown(flags: pd.DataFrame, tables: Sequence[str]) -> str:
    """Counts per table first (the run's summary), then one line per flag."""
    n_b, n_m = int((flags["flag"] == "backfire").sum()), int((flags["flag"] == "non-monotone").sum())
    head = (
        f"**{n_b} backfire(s), {n_m} non-monotone β step(s)** over {len(tables)} table(s): "
        + "; ".join(
            f"{t}: {int(((flags['table'] == t) & (flags['flag'] == 'backfire')).sum())} backfire, "
            f"{int(((flags['table'] == t) & (flags['flag'] == 'non-monotone')).sum())} non-monotone"
            for t in tables
        )
        + ".\n\n"
    )
    if flags.empty:
        return head + "No setting backfired or got worse as β grew (at 95% paired confidence).\n\n" + FLAG_NOTE + "\n"
    rows = []
    for _, r in flags.iterrows():
        scale, digits = (100.0, 1) if r["statistic"] == "positive_rate" else (1.0, 3)
        ref = "plain" if r["reference"] == "plain" else r["reference"].replace("beta", "β")
        rows.append(
            [
                r["table"],
                method_label(r["method"]),
                f"{r['beta']:g}",
                str(r["top_k"]),
                FLAG_MARK + r["flag"],
                f"{r['statistic']} vs {ref}",
                fmt_diff(r, "delta", digits, scale),
            ]
        )
    return (
        head
        + md_table(["Table", "Method", "β", "k", "Flag", "Compared", "Δ [95% CI]"], rows, left=2)
        + f"\n{FLAG_NOTE}\n"
    )


def write_flags(df: pd.DataFrame, out_dir: str | Path, formats: Sequence[str] = ("csv", "md")) -> list[Path]:
    """`flags.{csv,md}`: every flagged row of every table (an empty list is written too: no flag is news)."""
    flags = flags_table(df)
    tables = sorted(df["family"].unique())
    return [
        _write(Path(out_dir) / f"flags.{ext}", ext, flags, lambda f: flags_markdown(f, tables))
        for ext in formats
        if ext in ("csv", "md")
    ]


def _groups(df: pd.DataFrame) -> list[int]:
    """Row indices where a new (target, prompt type, k) block starts: rules between blocks in LaTeX."""
    keys = list(zip(df["target"].fillna(""), df["prompt_type"].fillna(""), df["top_k"].astype(str)))
    return [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]


def _has_paired(df: pd.DataFrame) -> bool:
    return any(c.endswith("_vs_plain") for c in df.columns)


def layout(family: str) -> list[Column]:
    """The family's columns; a prompt set of a task (`toxicity-challenging`) uses its task's."""
    cols = LAYOUTS.get(family) or LAYOUTS.get(family.split("-", 1)[0], GENERIC)
    return cols + [FLAG_COLUMN]


def format_table(df: pd.DataFrame, family: str, pm: str = " ± ") -> pd.DataFrame:
    cols = layout(family)
    if not _has_paired(df):
        cols = [c for c in cols if not c.header.startswith("Δ")]
    if "backfire" not in df.columns:
        cols = [c for c in cols if c is not FLAG_COLUMN]
    rows = [[c.fmt(r, pm) for c in cols] for _, r in df.iterrows()]
    return pd.DataFrame(rows, columns=[c.header for c in cols])


def to_markdown(df: pd.DataFrame, family: str) -> str:
    t = format_table(df, family)
    numeric = [h not in ("Method", "Target", "Prompts") for h in t.columns]
    lines = ["| " + " | ".join(t.columns) + " |", "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    for row in t.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    note = CI_NOTE + (f" {PAIRED_NOTE}" if _has_paired(df) else "") + (f" {FLAG_NOTE}" if "backfire" in df else "")
    return "\n".join(lines) + f"\n\n{note}\n" + degenerate_note(df)


def degenerate_note(df: pd.DataFrame) -> str:
    """A line naming the runs with empty / whitespace-only continuations (`n_empty` of `bench score`): their
    metrics describe degenerate text. Nothing when there are none, so ordinary tables do not change."""
    if "n_empty" not in df.columns:
        return ""
    n = pd.to_numeric(df["n_empty"], errors="coerce").fillna(0)
    runs = [
        f"{method_label(r['method'])} β={float(r['beta']):g} k={r['top_k']}: {int(e)} of {int(r['n_samples'])}"
        for (_, r), e in zip(df.iterrows(), n)
        if e > 0
    ]
    if not runs:
        return ""
    return f"\nDegenerate output (empty or whitespace-only continuations): {'; '.join(runs)}.\n"


_TEX_ESCAPE = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(s: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in s)


def to_latex(df: pd.DataFrame, family: str) -> str:
    """A booktabs tabular (no float environment, so papers can \\input it inside their own table)."""
    t = format_table(df, family, pm=" PLUSMINUS ")
    headers = [
        tex_escape(h).replace("β", r"$\beta$").replace("(%)", r"(\%)").replace("Δ", r"$\Delta$") for h in t.columns
    ]
    align = "".join("l" if h in ("Method", "Target", "Prompts") else "r" for h in t.columns)
    breaks = set(_groups(df))
    note = CI_NOTE + (f" {PAIRED_NOTE}" if _has_paired(df) else "") + (f" {FLAG_NOTE}" if "backfire" in df else "")
    out = [
        f"% {note.replace(FLAG_MARK, '')}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
    ]
    for i, row in enumerate(t.itertuples(index=False)):
        if i in breaks:
            out.append(r"\midrule")
        cells = [
            tex_escape(str(v).replace(FLAG_MARK, "")).replace(" PLUSMINUS ", r" $\pm$ ").replace("–", "--") for v in row
        ]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if degenerate_note(df):
        out.append("% " + tex_escape(degenerate_note(df).strip()).replace("β", "beta"))
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


def _write(path: Path, fmt: str, df: pd.DataFrame, markdown: Callable[[pd.DataFrame], str]) -> Path:
    with atomic_open(path) as fh:
        if fmt == "csv":
            df.to_csv(fh, index=False, lineterminator="\n")
        else:
            fh.write(markdown(df))
    log.info("wrote %s (%d rows)", path, len(df))
    return path


# ------------------------------------------------------------------------------------------ matched fluency
MATCHED_NOTE = (
    "Fluency is the geometric-mean PPL (exp of the mean log PPL: robust to the few degenerate "
    "continuations that carry the arithmetic mean). "
    "Each method's β sweep starts at plain decoding (β = 0); the metric is interpolated linearly in "
    "log PPL at PPL = level × plain's PPL, on the first segment (in β order) that reaches it. "
    "95% CIs: bootstrap over prompts resampled jointly for all settings of the task (the level moves "
    "with plain's resampled PPL); 'defined' is the share of replicates whose sweep reaches the level. "
    "Δ vs RAD: paired difference at the same level; * marks a CI that excludes 0. "
    "'–' with a reason: the sweep does not reach the level (never extrapolated)."
)
RULE_NOTE = (
    "Δ vs clamp (a method decoded with another reward rule): paired difference to the same reward model under "
    "the papers' clamp rule at the same level."
)


def matched_markdown(df: pd.DataFrame) -> str:
    if df.empty:  # e.g. scored without fluency (`bench score --metrics toxicity`), or no reward-guided run
        return (
            "No matched-fluency comparison: it needs per-continuation PPL (`bench score --metrics ...,fluency`) "
            "and plain decoding plus a β sweep of a method at the same k.\n"
        )
    out = []
    rules = "vs_rule_ref" in df and bool(df["vs_rule_ref"].notna().any())
    for (task, k, metric), part in df.groupby(["task", "top_k", "metric"], sort=False):
        scale, digits, name = (
            (100.0, 1, "positive rate (%)") if metric == "positive_rate" else (1.0, 3, "avg. max toxicity")
        )
        out.append(f"**{task}** (k = {k}): {name} at matched fluency\n")
        rows = []
        for _, r in part.iterrows():
            rows.append(
                [
                    method_label(r["method"]),
                    f"{r['level']:g}× ({r['ppl_level']:.1f})",
                    fmt_ci(r, "value", digits, scale),
                    "–" if _num(r["boot_defined"]) is None else f"{r['boot_defined']:.0%}",
                    fmt_diff(r, "vs_rad", digits, scale),
                    *([fmt_diff(r, "vs_rule_ref", digits, scale)] if rules else []),
                    str(r["reason"] or ""),
                ]
            )
        head = [
            "Method",
            "PPL (geo.) level",
            "Value",
            "defined",
            "Δ vs RAD",
            *(["Δ vs clamp"] if rules else []),
            "note",
        ]
        out.append(md_table(head, rows, left=1))
    return "\n".join(out) + f"\n{MATCHED_NOTE}" + (f" {RULE_NOTE}" if rules else "") + "\n"


def write_matched_fluency(df: pd.DataFrame, out_dir: str | Path, formats: Sequence[str] = ("csv", "md")) -> list[Path]:
    df = df.fillna({"reason": ""}) if not df.empty else df
    return [
        _write(Path(out_dir) / f"matched_fluency.{ext}", ext, df, matched_markdown)
        for ext in formats
        if ext in ("csv", "md")
    ]


# ------------------------------------------------------------------------------------------ reward models
def load_reward_models(folders: Sequence[str | Path]) -> pd.DataFrame:
    """One row per reward-model folder (laid out as `<task>/<parametrization>/`): its train_summary.json."""
    import json

    rows = []
    for folder in folders:
        folder = Path(folder)
        path = folder / "train_summary.json"
        if not path.exists():
            raise DataError(f"{path}: not found; expected a reward-model folder written by `bench train`")
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
            final = s["final"]
            row = {
                "task": folder.parent.name,
                "parametrization": s["parametrization"],
                "steps": s["steps"],
                "max_steps": s.get("max_steps", s["steps"]),
                "best_step": s.get("best_step", s["steps"]),
                "stop_reason": s.get("stop_reason", ""),
                "examples_seen": s.get("examples_seen"),
                "examples_seen_at_best": s.get("examples_seen_at_best"),
                "epochs": s.get("epochs"),
                "heldout_mse": final.get("heldout_mse"),
                "heldout_auc": final.get("heldout_auc"),
                "heldout_acc": final.get("heldout_acc"),
                "teacher_mse_prefixes": final.get("heldout_objective/distill_forward"),
                "teacher_mse_candidates": final.get("heldout_objective/distill_candidates"),
                "train_seconds": s.get("train_seconds", s.get("seconds_this_run")),
                "folder": str(folder),
            }
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a `bench train` summary ({type(exc).__name__}: {exc})") from exc
        rows.append(row)
    if not rows:
        raise DataError("no reward-model folders given")
    df = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(method_order())}
    df = df.assign(_m=df["parametrization"].map(lambda m: order.get(m, len(order))))
    return df.sort_values(["task", "_m", "parametrization"], kind="stable").drop(columns="_m").reset_index(drop=True)


def reward_models_markdown(df: pd.DataFrame) -> str:
    def f(v, spec):
        v = _num(v)
        return "–" if v is None else format(v, spec)

    rows = [
        [
            r["task"],
            method_label(r["parametrization"]),
            f"{int(r['best_step'])} / {int(r['steps'])} / {int(r['max_steps'])}",
            f(r["examples_seen"], ".0f"),
            f(r["heldout_mse"], ".4f"),
            f(r["heldout_auc"], ".3f"),
            f(r["heldout_acc"], ".3f"),
            f(r["teacher_mse_prefixes"], ".4f"),
            f(r["teacher_mse_candidates"], ".4f"),
            f(r["train_seconds"], ".0f"),
            str(r["stop_reason"]),
        ]
        for _, r in df.iterrows()
    ]
    head = [
        "Task",
        "Reward model",
        "Steps (best / run / budget)",
        "Examples seen",
        "Held-out MSE",
        "AUC",
        "Accuracy",
        "Teacher MSE (prefixes)",
        "Teacher MSE (candidates)",
        "Train time (s)",
        "Stopped by",
    ]
    note = (
        "Held-out metrics of the saved (best) model on the task's held-out texts (steering attribute; AUC and "
        "accuracy at 0.5 for binary labels). Teacher MSE: the distilled ARM's squared error to its RAD "
        "teacher's rewards on held-out prefixes (observed next tokens) and on the candidates distillation "
        "trains on. Train time on the machine that ran it (a loaded machine inflates it)."
    )
    return md_table(head, rows, left=2) + f"\n{note}\n"


def write_reward_models(df: pd.DataFrame, out_dir: str | Path, formats: Sequence[str] = ("csv", "md")) -> list[Path]:
    return [
        _write(Path(out_dir) / f"reward_models.{ext}", ext, df, reward_models_markdown)
        for ext in formats
        if ext in ("csv", "md")
    ]
