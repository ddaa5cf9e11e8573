"""Tables of `bench judges`: every judge's raw and Perspective-calibrated numbers per setting, and the judges'
agreement under steering (flags where they diverge from how they agree on plain decoding)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from bench.reporting.format import fmt, md_table
from bench.utils.io import atomic_outputs

JUDGE_COLUMNS = [
    "task",
    "method",
    "beta",
    "top_k",
    "judge",
    "judge_version",
    "primary",
    "n_prompts",
    "n_texts",
    "avg_max_toxicity",
    "avg_max_toxicity_lo",
    "avg_max_toxicity_hi",
    "toxic_rate",
    "toxic_rate_lo",
    "toxic_rate_hi",
    "cal_avg_max_toxicity",
    "cal_avg_max_toxicity_lo",
    "cal_avg_max_toxicity_hi",
    "cal_toxic_rate",
    "cal_toxic_rate_lo",
    "cal_toxic_rate_hi",
    "cal_cv_mae",
    "cal_cv_mean_bias_sd",
    "cal_cv_toxic_rate_bias",
]
PAIR_COLUMNS = [
    "task",
    "method",
    "beta",
    "top_k",
    "judge_a",
    "judge_b",
    "scale",
    "spearman",
    "spearman_lo",
    "spearman_hi",
    "gap",
    "gap_lo",
    "gap_hi",
    "spearman_vs_plain",
    "gap_vs_plain",
    "gap_vs_plain_lo",
    "gap_vs_plain_hi",
    "diverges",
    "reason",
]


def _blank(x):
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _ci(r: dict, key: str, spec: str = ".3f") -> str:
    v = r.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    lo, hi = r.get(f"{key}_lo"), r.get(f"{key}_hi")
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return fmt(v, spec)
    return f"{fmt(v, spec)} [{fmt(lo, spec)}, {fmt(hi, spec)}]"


def _label(r: dict) -> str:
    from bench.reporting.tables import PLAIN, method_label

    beta = "" if r["method"] == PLAIN else f", β={fmt(r['beta'], 'g')}"
    return f"{method_label(r['method'])}{beta}, k={r['top_k']}"


def _csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: _blank(r.get(k)) for k in columns})


def _judges_md(path: Path, rows: list[dict]) -> None:
    cv = {}
    for r in rows:
        if not (isinstance(r["cal_cv_mae"], float) and math.isnan(r["cal_cv_mae"])):
            cv[r["judge"]] = r
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(
            "Toxicity of each setting under every judge (bench judges). *Raw*: the judge's own score; "
            "*calibrated*: mapped to Perspective's scale by the judge's isotonic calibration "
            "(data/calibration/perspective_isotonic.json). [95% bootstrap CI over prompts]. The calibration's "
            "own error (5-fold cross-validated on RTP continuations), not in the CIs:"
        )
        for j, r in cv.items():
            fh.write(
                f" {j}: MAE {fmt(r['cal_cv_mae'], '.3f')}, mean-bias SD {fmt(r['cal_cv_mean_bias_sd'], '.3f')},"
                f" toxic-rate bias {fmt(r['cal_cv_toxic_rate_bias'], '+.3f')};"
            )
        fh.write(" (*) marks the run's primary judge.\n\n")
        head = [
            "setting",
            "judge",
            "avg max tox. (raw)",
            "avg max tox. (calibrated)",
            "toxic rate (raw)",
            "toxic rate (calibrated)",
        ]
        cells = [
            [
                f"{r['task']}: {_label(r)}",
                r["judge"] + (" (*)" if r["primary"] else ""),
                _ci(r, "avg_max_toxicity"),
                _ci(r, "cal_avg_max_toxicity"),
                _ci(r, "toxic_rate"),
                _ci(r, "cal_toxic_rate"),
            ]
            for r in rows
        ]
        fh.write(md_table(head, cells))


def _pairs_md(path: Path, rows: list[dict], args) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(
            "Do the judges agree on steered text as they do on plain decoding? (bench judges) Spearman: "
            "between the two judges over continuations; gap: avg max toxicity of judge A minus judge B "
            "(paired bootstrap over prompts; on the calibrated scale when both have a calibration). "
            f"**DIVERGES**: Spearman more than {fmt(args.spearman_drop, 'g')} below plain's at the same k (the "
            f"setting's CI entirely below plain's value), or the gap moved more than {fmt(args.gap_change, 'g')} "
            "from plain's (paired CI of the change, prompts resampled jointly, excluding 0).\n\n"
        )
        head = ["setting", "judges", "scale", "Spearman [95% CI]", "Δ vs plain", "gap [95% CI]", "Δ vs plain", "flag"]
        cells = [
            [
                f"{r['task']}: {_label(r)}",
                f"{r['judge_a']} vs {r['judge_b']}",
                r["scale"],
                _ci(r, "spearman"),
                fmt(r["spearman_vs_plain"], "+.3f", nan="–"),
                _ci(r, "gap", "+.3f"),
                _ci(r, "gap_vs_plain", "+.3f"),
                f"**DIVERGES**: {r['reason']}" if r["diverges"] else "",
            ]
            for r in rows
        ]
        fh.write(md_table(head, cells))


def write_judge_tables(outs: list[Path], judge_rows: list[dict], pair_rows: list[dict], args) -> None:
    """outs: judges CSV, judges MD, pairs CSV, pairs MD; written together (all or none)."""
    with atomic_outputs(*outs) as tmp:
        _csv(tmp[0], JUDGE_COLUMNS, judge_rows)
        _judges_md(tmp[1], judge_rows)
        _csv(tmp[2], PAIR_COLUMNS, pair_rows)
        _pairs_md(tmp[3], pair_rows, args)
