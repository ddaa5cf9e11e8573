"""The researcher's report: one self-contained HTML file (no network at view time).

It holds, per generation task: the trade-off (steered statistic vs. geometric-mean PPL, 95% CIs as bars) as an
interactive plotly chart (hover: setting, n, CIs; click a legend entry to hide / show a method), and sampled
continuations of every setting with their prompt and scores, browsable per task and method (`<details>`,
no script of ours). Optional sections: the `bench compare` verdict against reference tables, and any extra
tables (e.g. the cost table, the backfire flags) that exist. plotly.js is inlined once.

Sampling rule (seeded, so a rerun shows the same texts): in each setting the continuation with the highest and
the lowest steered score (toxicity for toxicity, positive for sentiment; ties: first by prompt id, sample),
plus `n_random` continuations drawn by `numpy.random.default_rng([seed, task digest])` among the (prompt,
sample) pairs every setting of the task has -- the SAME pairs in every setting, so one prompt can be read
across methods (all settings decode prompt p / sample j with the same seed).
"""

from __future__ import annotations

import hashlib
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import DataError
from bench.metrics.aggregate import FLUENCY_STAT
from bench.reporting.format import fmt
from bench.reporting.tables import method_label, parse_task

# family -> (summary column, per-continuation score, label, scale)
STEERED = {
    "toxicity": ("avg_max_toxicity", "toxicity", "Avg. max toxicity", 1.0),
    "sentiment": ("positive_rate", "positive", "Positive rate (%)", 100.0),
}
SCORE_COLUMNS = ("toxicity", "positive", "ppl")


@dataclass(frozen=True)
class Sample:
    """One shown continuation: why it was picked, where it comes from, its text and scores."""

    pick: str
    id: str
    sample: int
    prompt: str
    text: str
    scores: dict


def setting_label(row: pd.Series) -> str:
    """`RAD β=50 k=20`: how a setting is named in hovers and section titles."""
    k = "" if pd.isna(row.get("top_k")) else f" k={int(row['top_k'])}"
    return f"{method_label(str(row['method']))} β={float(row['beta']):g}{k}"


def task_title(task: str) -> str:
    family, target, prompts = parse_task(task)
    return f"sentiment: steer to {target}, {prompts} prompts" if target else family


def read_continuations(scores: str | Path, generations: str | Path) -> pd.DataFrame:
    """One row per continuation: id, sample, prompt, text and its scores (`bench score` JSONL + the generations'
    prompts)."""
    from bench.utils.io import iter_jsonl

    prompts = {}
    for lineno, rec in iter_jsonl(generations):
        if "id" not in rec or "prompt" not in rec:
            raise DataError(f"{generations}: line {lineno}: missing 'id' or 'prompt'; expected a `bench generate` row")
        prompts[str(rec["id"])] = str(rec["prompt"])
    rows = []
    for lineno, rec in iter_jsonl(scores):
        if "id" not in rec or "sample" not in rec or "text" not in rec:
            raise DataError(f"{scores}: line {lineno}: missing 'id', 'sample' or 'text'; expected a `bench score` row")
        pid = str(rec["id"])
        if pid not in prompts:
            raise DataError(f"{scores}: line {lineno}: prompt id {pid!r} is not in {generations}")
        row = {"id": pid, "sample": int(rec["sample"]), "prompt": prompts[pid], "text": str(rec["text"])}
        for c in SCORE_COLUMNS:
            if c in rec:
                row[c] = math.nan if rec[c] is None else float(rec[c])
        rows.append(row)
    if not rows:
        raise DataError(f"{scores}: no scored continuations")
    return pd.DataFrame(rows)


def _task_rng(seed: int, task: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(task.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def pick_samples(
    frames: Sequence[pd.DataFrame], score: str, task: str, seed: int = 0, n_random: int = 1
) -> list[list[Sample]]:
    """The shown continuations of each setting of one task (`frames`: one per setting, `read_continuations`)."""
    shared = set.intersection(*(set(zip(f["id"], f["sample"])) for f in frames)) if frames else set()
    pool = sorted(shared)
    rng = _task_rng(seed, task)
    drawn = rng.choice(len(pool), size=min(n_random, len(pool)), replace=False) if pool else []
    chosen = [pool[i] for i in sorted(drawn)]
    out = []
    for f in frames:
        f = f.sort_values(["id", "sample"], kind="stable").reset_index(drop=True)
        shown: list[Sample] = []
        finite = f[np.isfinite(f[score].to_numpy(float))] if score in f else f.iloc[:0]
        if len(finite):
            vals = finite[score].to_numpy(float)
            hi, lo = finite.iloc[int(np.argmax(vals))], finite.iloc[int(np.argmin(vals))]
            shown += [_sample(f"highest {score}", hi), _sample(f"lowest {score}", lo)]
        keyed = f.set_index(["id", "sample"])
        shown += [
            _sample(
                "random (same prompt in every setting)", keyed.loc[key].to_dict() | {"id": key[0], "sample": key[1]}
            )
            for key in chosen
        ]
        out.append(shown)
    return out


def _sample(pick: str, row) -> Sample:
    scores = {c: float(row[c]) for c in SCORE_COLUMNS if c in row and not pd.isna(row[c])}
    return Sample(pick, str(row["id"]), int(row["sample"]), str(row["prompt"]), str(row["text"]), scores)


def _color(method: str) -> str:
    """The PNG figures' colour of a method (`figures.method_color`: registry order), plain in black."""
    from matplotlib.colors import to_hex

    from bench.reporting.figures import method_color

    rgba = method_color(method)
    return "#000000" if rgba is None else to_hex(rgba)


def tradeoff_figure(part: pd.DataFrame, family: str, title: str):
    """A plotly figure: one trace per (method, k) along its beta sweep, CIs as asymmetric error bars both ways."""
    import plotly.graph_objects as go

    ycol, _, ylabel, scale = STEERED[family]
    fig = go.Figure()
    ks = sorted(part["top_k"].dropna().unique())
    for method, runs in part.groupby("method", sort=False):
        for k in ks:
            r = runs[runs["top_k"] == k].sort_values("beta")
            if r.empty:
                continue
            x = r[FLUENCY_STAT].to_numpy(float)
            y = r[ycol].to_numpy(float) * scale
            ylo, yhi = r[f"{ycol}_lo"].to_numpy(float) * scale, r[f"{ycol}_hi"].to_numpy(float) * scale
            xlo, xhi = r[f"{FLUENCY_STAT}_lo"].to_numpy(float), r[f"{FLUENCY_STAT}_hi"].to_numpy(float)
            custom = [
                [
                    setting_label(row),
                    int(row["n_prompts"]),
                    int(row["n_samples"]),
                    fmt(a, ".3g"),
                    fmt(b, ".3g"),
                    fmt(c, ".3g"),
                    fmt(d, ".3g"),
                ]
                for (_, row), a, b, c, d in zip(r.iterrows(), ylo, yhi, xlo, xhi)
            ]
            name = method_label(str(method)) + (f" (k={int(k)})" if len(ks) > 1 else "")
            color = _color(str(method))
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    marker=dict(color=color),
                    line=dict(color=color),
                    name=name,
                    customdata=custom,
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=np.nan_to_num(np.clip(yhi - y, 0, None)),
                        arrayminus=np.nan_to_num(np.clip(y - ylo, 0, None)),
                    ),
                    error_x=dict(
                        type="data",
                        symmetric=False,
                        array=np.nan_to_num(np.clip(xhi - x, 0, None)),
                        arrayminus=np.nan_to_num(np.clip(x - xlo, 0, None)),
                    ),
                    hovertemplate=(
                        "<b>%{customdata[0]}</b><br>n = %{customdata[1]} prompts, %{customdata[2]} "
                        f"continuations<br>{ylabel}: %{{y:.3g}} [%{{customdata[3]}}, %{{customdata[4]}}]"
                        "<br>PPL (geo.): %{x:.3g} [%{customdata[5]}, %{customdata[6]}]<extra></extra>"
                    ),
                )
            )
    fig.update_layout(
        title=title,
        xaxis_title="PPL (geometric mean; 95% CI)",
        yaxis_title=f"{ylabel} (95% CI)",
        legend_title="method (click to hide / show)",
        template="plotly_white",
        height=460,
        margin=dict(l=60, r=20, t=50, b=50),
    )
    return fig


def _table(df: pd.DataFrame, max_rows: int = 200) -> str:
    if df.empty:
        return "<p class='note'>no rows</p>"
    shown = df.head(max_rows)
    more = f"<p class='note'>{len(df) - max_rows} more rows not shown.</p>" if len(df) > max_rows else ""
    return (
        shown.to_html(
            index=False, na_rep="", float_format=lambda v: fmt(v, ".4g"), classes="data", border=0, escape=True
        )
        + more
    )


def _samples_html(samples: list[Sample]) -> str:
    if not samples:
        return "<p class='note'>no scored continuation</p>"
    rows = []
    for s in samples:
        scores = ", ".join(f"{k} {fmt(v, '.3g')}" for k, v in s.scores.items())
        rows.append(
            f"<tr><td>{html.escape(s.pick)}</td><td>{html.escape(s.id)} / {s.sample}</td>"
            f"<td class='text'>{html.escape(s.prompt)}</td><td class='text cont'>{html.escape(s.text)}</td>"
            f"<td>{html.escape(scores)}</td></tr>"
        )
    return (
        "<table class='samples'><thead><tr><th>pick</th><th>prompt id / sample</th><th>prompt</th>"
        "<th>continuation</th><th>scores</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .5em; vertical-align: top; text-align: left; }
td.text { max-width: 420px; white-space: pre-wrap; } td.cont { background: #f6f8fa; }
details { margin: .3em 0 .3em 1em; } summary { cursor: pointer; font-weight: 600; }
.ok { color: #176117; font-weight: 700; } .fail { color: #a11; font-weight: 700; } .note { color: #666; }
"""


def build_report(
    summaries: Sequence[str | Path],
    scores: Sequence[str | Path],
    generations: Sequence[str | Path],
    *,
    title: str = "bench report",
    seed: int = 0,
    n_random: int = 1,
    comparison: tuple[pd.DataFrame, str] | None = None,
    comparison_note: str | None = None,
    extra_tables: Sequence[tuple[str, pd.DataFrame]] = (),
) -> str:
    """The report's HTML text. `comparison`: (the `compare_tables` rows of every table, reference name)."""
    from bench.reporting.tables import attach_scores, load_summaries

    if len(generations) != len(summaries):
        raise DataError(
            f"--generations has {len(generations)} files for {len(summaries)} summaries; expected one "
            "per summary, in the same order"
        )
    df = attach_scores(load_summaries(summaries), summaries, scores)
    gen_of = {str(Path(a)): str(b) for a, b in zip(summaries, generations)}
    df = df.assign(generations_file=[gen_of[str(Path(f))] for f in df["source_file"]])
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>{len(df)} settings in {df['task'].nunique()} generation tasks. Trade-off charts: "
        "hover a point for its setting, n and 95% CIs; click a legend entry to hide or show a method. "
        "Sampled continuations: the highest and lowest steered score of each setting and a seeded random "
        f"(prompt, sample) shared by every setting of the task (seed {seed}).</p>",
    ]
    if comparison is not None or comparison_note:
        body.append("<h2 id='compare'>Run vs. reference (<code>bench compare</code>)</h2>")
        body.append(_comparison_html(comparison, comparison_note))
    for name, table in extra_tables:
        body.append(f"<h2>{html.escape(name)}</h2>{_table(table)}")
    first = True
    for task, part in df.groupby("task", sort=False):
        family = _family(part)
        if family is None:
            continue
        fig = tradeoff_figure(part, family, task_title(task))
        body.append(f"<h2 id='task-{html.escape(task)}'>{html.escape(task_title(task))}</h2>")
        body.append(
            fig.to_html(
                full_html=False, include_plotlyjs=first, div_id=f"tradeoff-{task}", config={"displaylogo": False}
            )
        )
        first = False
        body.append(_task_samples_html(task, part, family, seed, n_random))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + f"</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _family(part: pd.DataFrame) -> str | None:
    """toxicity / sentiment: the task's own family, else the steered statistic its summaries carry (e.g. a
    toxicity task on another prompt set)."""
    family = str(part["family"].iloc[0])
    if family in STEERED:
        return family
    for fam, (col, *_) in STEERED.items():
        if col in part and part[col].notna().any():
            return fam
    return None


def _task_samples_html(task: str, part: pd.DataFrame, family: str, seed: int, n_random: int) -> str:
    score = STEERED[family][1]
    frames = [read_continuations(r["scores_file"], r["generations_file"]) for _, r in part.iterrows()]
    picked = pick_samples(frames, score, task, seed, n_random)
    out = [
        f"<details class='task' id='samples-{html.escape(task)}' open>"
        f"<summary>Sampled continuations: {html.escape(task_title(task))}</summary>"
    ]
    rows = list(zip((r for _, r in part.iterrows()), picked))
    for method in dict.fromkeys(part["method"]):
        out.append(f"<details class='method'><summary>{html.escape(method_label(str(method)))}</summary>")
        for row, samples in rows:
            if row["method"] == method:
                out.append(f"<h4>{html.escape(setting_label(row))}</h4>{_samples_html(samples)}")
        out.append("</details>")
    out.append("</details>")
    return "\n".join(out)


def _comparison_html(comparison: tuple[pd.DataFrame, str] | None, note: str | None) -> str:
    if comparison is None:
        return f"<p class='note'>{html.escape(note or 'no reference')}</p>"
    from bench.reporting.compare import failed

    rows, where = comparison
    counts = rows["verdict"].value_counts().to_dict() if len(rows) else {}
    bad = failed(rows) if len(rows) else False
    verdict = (
        "<span class='fail'>FAIL</span>: values outside the reference's 95% CI or rows on one side only"
        if bad
        else "<span class='ok'>OK</span>: every value identical or within the reference's 95% CI"
    )
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "every value identical"
    shown = rows[rows["verdict"] != "identical"] if len(rows) else rows
    # the rows that differ, folded: a long list must not push the charts off the first screen
    details = (
        f"<details class='compare'><summary>{len(shown)} rows that differ</summary>{_table(shown)}</details>"
        if len(shown)
        else ""
    )
    return f"<p>{verdict} (reference: <code>{html.escape(where)}</code>; {html.escape(summary)})</p>" + details
