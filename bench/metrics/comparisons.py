"""Comparisons that use the design: every setting of a task decodes prompt p / sample j with the same seed.

- `paired_differences`: each setting's difference to plain decoding and to RAD at the same beta (and k), with a
  paired bootstrap CI (the same resampled prompts for both settings); for the steered statistics (`MATCHED`)
  also to the same method at the next smaller beta (`_vs_prev`: does the sweep get worse as beta grows?).
- `matched_fluency`: along each method's beta sweep (plain = beta 0 is every sweep's first point), the value of
  a statistic (avg. max toxicity, positive rate) at fixed fluency levels (factors of plain's geometric-mean
  PPL, `aggregate.FLUENCY_STAT`: the arithmetic mean is carried by a few outlier texts), with
  bootstrap CIs from resampling prompts jointly across all settings of the task (so the level itself, a
  factor of the resampled plain PPL, moves with each replicate), and the paired difference to RAD.

Interpolation is linear in log(PPL) between consecutive points of the sweep in beta order, at the FIRST
segment that reaches the level (PPL need not be monotone in beta). It works on the log scale throughout: the
geometric-mean PPL's ratio already is a mean log PPL (`aggregate.log_fluency`), and the level is log(factor) +
plain's; PPLs appear only in the reported `ppl_level` and reasons. A level no segment reaches gives NaN and a
reason; nothing is extrapolated. All bootstraps go through `bench.metrics.aggregate.resample_ratios`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.errors import DataError
from bench.metrics.aggregate import (
    FLUENCY_STAT,
    STAT_SCORE,
    log_fluency,
    percentile_ci,
    prompt_ratios,
    ratio,
    resample_ratios,
)

COMPARED = ("avg_max_toxicity", "toxic_rate", "positive_rate", "ppl")
MATCHED = ("avg_max_toxicity", "positive_rate")
# |log PPL - log level| below this counts as a hit: a level that is a sweep point's own PPL (e.g. plain 10, point
# 15, factor 1.5) misses it by float round-off (log 1.5 + log 10 != log 15 in binary), which would turn a point
# at the sweep's end into "above the sweep". A relative PPL difference of 1e-9.
LOG_TOL = 1e-9


@dataclass
class RunScores:
    """Per-prompt, per-sample scores of one run (one `bench score` JSONL), keyed by prompt id."""

    path: str
    ids: list[str]
    scores: dict[str, list[list[float]]] = field(default_factory=dict)  # score name -> [prompt][sample]

    def ratios(self, stat: str, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-prompt (num, den) of `stat` on prompts `ids` (this run's own order is irrelevant)."""
        pos = {i: k for k, i in enumerate(self.ids)}
        per_prompt = self.scores[STAT_SCORE[stat]]
        return prompt_ratios(stat, [per_prompt[pos[i]] for i in ids])


def read_scores(path: str | Path) -> RunScores:
    """Read a per-continuation scores JSONL ({id, sample, toxicity?, positive?, ppl?}); when its
    `.meta.json` (written by `bench score`) is there, the content digest recorded in it is verified."""
    from bench.utils.io import DIGEST_KEY, iter_jsonl, read_json, verify_digest

    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: per-continuation scores not found (`bench score --out-scores` writes them "
            "next to the summary CSV, same name with .jsonl)"
        )
    meta = Path(f"{path}.meta.json")
    if meta.is_file() and path.is_file():
        verify_digest(path, read_json(meta, expect=dict).get(DIGEST_KEY), meta)
    by_id: dict[str, dict[str, dict[int, float]]] = {}
    names = [n for n in ("toxicity", "positive", "ppl")]
    present: set[str] = set()
    for lineno, rec in iter_jsonl(path):
        if "id" not in rec or "sample" not in rec:
            raise DataError(f"{path}: line {lineno}: missing 'id' or 'sample'; expected a `bench score` row")
        slot = by_id.setdefault(str(rec["id"]), {n: {} for n in names})
        for n in names:
            if n in rec:
                present.add(n)
                v = rec[n]
                slot[n][int(rec["sample"])] = math.nan if v is None else float(v)
    if not by_id:
        raise DataError(f"{path}: no scored continuations")
    ids = list(by_id)
    scores = {n: [[by_id[i][n][j] for j in sorted(by_id[i][n])] for i in ids] for n in names if n in present}
    return RunScores(str(path), ids, scores)


def common_ids(runs: Sequence[RunScores]) -> list[str]:
    """The prompt ids every run scored (first run's order); refuse runs on different prompt sets."""
    first = runs[0]
    for r in runs[1:]:
        if set(r.ids) != set(first.ids):
            extra = sorted(set(r.ids) ^ set(first.ids))[:3]
            raise DataError(
                f"{r.path} and {first.path} scored different prompts (e.g. {extra}); paired "
                "comparisons need every setting of a task on the same prompts"
            )
    return list(first.ids)


def stat_matrix(runs: Sequence[RunScores], stat: str) -> tuple[np.ndarray, np.ndarray]:
    """[S, n] per-prompt num / den of `stat` for the runs, prompts aligned."""
    ids = common_ids(runs)
    parts = [r.ratios(stat, ids) for r in runs]
    return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])


# --------------------------------------------------------------------------------------- paired differences
def paired_differences(
    keys: Sequence[dict], runs: Sequence[RunScores], n_boot: int = 1000, seed: int = 0
) -> list[dict]:
    """For the runs of ONE task and k (`keys[i]` has method, beta): per run, `{stat}_vs_{plain,rad}[_lo,_hi]`,
    and `{stat}_vs_prev[_lo,_hi]` for the statistics in `MATCHED`.

    A run is compared with plain (if present; not with itself), with RAD at its beta (if present; plain and
    RAD itself get NaN) and with its own method at the next smaller beta (NaN for a sweep's first beta: that
    comparison is `_vs_plain`). Statistics whose score the runs lack are skipped.
    """
    out: list[dict] = [{} for _ in keys]
    plain = [i for i, k in enumerate(keys) if k["method"] == "plain"]
    rad = {float(k["beta"]): i for i, k in enumerate(keys) if k["method"] == "rad"}
    stats = [s for s in COMPARED if all(STAT_SCORE[s] in r.scores for r in runs)]
    for stat in stats:
        num, den = stat_matrix(runs, stat)
        reps = resample_ratios(num, den, n_boot, seed) if n_boot > 0 and num.shape[1] >= 2 else None
        point = ratio(num, den)
        for i, k in enumerate(keys):
            refs = {
                "plain": plain[0] if plain and k["method"] != "plain" else None,
                "rad": rad.get(float(k["beta"])) if k["method"] not in ("plain", "rad") else None,
            }
            if stat in MATCHED:
                below = [
                    j
                    for j, kj in enumerate(keys)
                    if kj["method"] == k["method"] != "plain" and float(kj["beta"]) < float(k["beta"])
                ]
                refs["prev"] = max(below, key=lambda j: float(keys[j]["beta"])) if below else None
            for name, j in refs.items():
                col = f"{stat}_vs_{name}"
                if j is None:
                    out[i].update({col: math.nan, f"{col}_lo": math.nan, f"{col}_hi": math.nan})
                    continue
                lo, hi = percentile_ci(reps[:, i] - reps[:, j]) if reps is not None else (math.nan, math.nan)
                out[i].update({col: float(point[i] - point[j]), f"{col}_lo": lo, f"{col}_hi": hi})
    return out


# --------------------------------------------------------------------------------------- matched fluency
def interpolate_sweep(log_ppl: np.ndarray, y: np.ndarray, log_level: np.ndarray) -> np.ndarray:
    """y at log PPL = log_level along each sweep, linear in log PPL on the first segment (in beta order) that
    reaches it.

    log_ppl, y: [B, P] sweeps (P points in beta order, plain first); log_level: [B]. NaN where no segment
    reaches it.
    """
    lt = np.asarray(log_level)[:, None]
    with np.errstate(invalid="ignore"):
        a, b = (np.where(np.abs(d) < LOG_TOL, 0.0, d) for d in (log_ppl[:, :-1] - lt, log_ppl[:, 1:] - lt))
        hit = np.isfinite(a) & np.isfinite(b) & (a * b <= 0) & np.isfinite(y[:, :-1]) & np.isfinite(y[:, 1:])
        first = np.argmax(hit, axis=1)
        rows = np.arange(len(first))
        a0, b0 = a[rows, first], b[rows, first]
        w = np.where(a0 == b0, 0.0, a0 / np.where(a0 == b0, 1.0, a0 - b0))  # a0 == b0 == 0: a flat segment on it
        y0, y1 = y[rows, first], y[rows, first + 1]
        return np.where(hit.any(axis=1), y0 + w * (y1 - y0), np.nan)


def _reason(log_ppl: np.ndarray, log_level: float) -> str:
    fin = np.exp(log_ppl[np.isfinite(log_ppl)])
    level = math.exp(log_level)
    if len(fin) < 2:
        return "fewer than two points with a finite PPL"
    if level > fin.max():
        return f"level PPL {level:.1f} above the sweep's highest PPL {fin.max():.1f}"
    if level < fin.min():
        return f"level PPL {level:.1f} below the sweep's lowest PPL {fin.min():.1f}"
    return "no segment with finite values reaches the level"


def _log_fluency_first(r: np.ndarray, s: int) -> np.ndarray:
    """Ratios of [fluency rows (s), statistic rows] on the last axis -> the fluency rows as log PPLs."""
    return np.concatenate([log_fluency(FLUENCY_STAT, r[..., :s]), r[..., s:]], axis=-1)


def matched_fluency(
    keys: Sequence[dict],
    runs: Sequence[RunScores],
    levels: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    stats: Sequence[str] = MATCHED,
) -> list[dict]:
    """Rows (method, metric, level, ppl_level, value[_lo/_hi], boot_defined, vs_rad[_lo/_hi], vs_rule_ref[_lo/_hi],
    reason) of ONE task and k. vs_rule_ref: a `<parametrization>+<rule>` method minus the same parametrization
    under the reference rule (clamp), paired. Needs a plain run (the sweeps' common start and the levels'
    reference)."""
    plain = [i for i, k in enumerate(keys) if k["method"] == "plain"]
    if not plain:
        return []
    p0 = plain[0]
    methods: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if k["method"] != "plain":
            methods.setdefault(k["method"], []).append(i)
    sweeps = {m: [p0] + sorted(ix, key=lambda i: float(keys[i]["beta"])) for m, ix in methods.items()}
    rows: list[dict] = []
    for stat in stats:
        if not all(STAT_SCORE[stat] in r.scores for r in runs) or not all("ppl" in r.scores for r in runs):
            continue
        n_y, d_y = stat_matrix(runs, stat)
        n_p, d_p = stat_matrix(runs, FLUENCY_STAT)
        s = len(runs)
        # one resample of prompts for all settings and both statistics: a joint bootstrap
        num, den = np.concatenate([n_p, n_y]), np.concatenate([d_p, d_y])
        point = _log_fluency_first(ratio(num, den), s)[None, :]
        reps = (
            _log_fluency_first(resample_ratios(num, den, n_boot, seed), s) if n_boot > 0 and num.shape[1] >= 2 else None
        )
        for factor in levels:
            log_level = math.log(factor) + float(point[0, p0])
            values: dict[str, tuple[float, np.ndarray | None]] = {}
            for m, ix in sweeps.items():
                cols_p, cols_y = np.array(ix), np.array(ix) + s
                v = float(interpolate_sweep(point[:, cols_p], point[:, cols_y], np.array([log_level]))[0])
                rv = (
                    interpolate_sweep(reps[:, cols_p], reps[:, cols_y], math.log(factor) + reps[:, p0])
                    if reps is not None
                    else None
                )
                values[m] = (v, rv)
            for m, ix in sweeps.items():
                v, rv = values[m]
                row = {
                    "method": m,
                    "metric": stat,
                    "level": float(factor),
                    "ppl_level": math.exp(log_level),
                    "betas": " ".join(f"{float(keys[i]['beta']):g}" for i in ix[1:]),
                    "value": v,
                    "value_lo": math.nan,
                    "value_hi": math.nan,
                    "boot_defined": math.nan,
                    "vs_rad": math.nan,
                    "vs_rad_lo": math.nan,
                    "vs_rad_hi": math.nan,
                    "vs_rule_ref": math.nan,
                    "vs_rule_ref_lo": math.nan,
                    "vs_rule_ref_hi": math.nan,
                    "reason": "",
                }
                if not math.isfinite(v):
                    row["reason"] = _reason(point[0, np.array(ix)], log_level)
                elif rv is not None:
                    row["value_lo"], row["value_hi"] = percentile_ci(rv)
                    row["boot_defined"] = float(np.isfinite(rv).mean())
                if m != "rad" and "rad" in values:
                    rad_v, rad_rv = values["rad"]
                    row["vs_rad"] = v - rad_v
                    if math.isfinite(row["vs_rad"]) and rv is not None:
                        row["vs_rad_lo"], row["vs_rad_hi"] = percentile_ci(rv - rad_rv)
                    elif not math.isfinite(rad_v) and math.isfinite(v):
                        row["reason"] = "RAD's sweep does not reach the level"
                ref = m.partition("+")[0]  # `<parametrization>+<rule>` vs the same model under the papers' clamp
                if ref != m and ref in values:
                    ref_v, ref_rv = values[ref]
                    row["vs_rule_ref"] = v - ref_v
                    if math.isfinite(row["vs_rule_ref"]) and rv is not None:
                        row["vs_rule_ref_lo"], row["vs_rule_ref_hi"] = percentile_ci(rv - ref_rv)
                rows.append(row)
    return rows
