"""`bench judges`: every toxicity judge on a run's generated continuations -- raw and Perspective-calibrated
average max toxicity / toxic rate per setting, and how the judges agree on steered text compared with plain.

Reads the runs the tables stage reads (`--summaries`, `--scores`: one per-continuation JSONL per summary, same
order); only settings with toxicity scores are used, each judge scores the continuation texts (through the
score cache, so the primary judge costs nothing). Calibrated numbers apply the map shipped for each judge
(`--calibration`, refused for another judge version); their bootstrap CIs are over prompts, and the map's own
cross-validated error is written next to them (`cal_cv_*`). Robustness: per setting and judge pair, Spearman
over continuations and the paired difference (gap) of their avg max toxicity, on the calibrated scale when
both judges have a map; a steered setting is flagged when the judges' Spearman falls by more than
`--spearman-drop` from plain's at the same k, or their gap moves by more than `--gap-change` (formulas:
`bench.metrics.judges`). Writes `<out>.csv/.md` (per judge) and `<out-pairs>.csv/.md` (per pair).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
from pathlib import Path

from bench.errors import DataError, ModelError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--summaries", nargs="+", required=True, help="one-row summary CSVs of bench score")
    p.add_argument("--scores", nargs="+", required=True, help="their per-continuation JSONL, same order")
    p.add_argument(
        "--scorer", action="append", required=True, help="toxicity judge (repeatable; the first is the run's primary)"
    )
    p.add_argument("--calibration", default=None, help="calibration JSON (bench calibrate); none: raw only")
    p.add_argument("--cache", default=None, help="SQLite score cache (the run's)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--spearman-drop",
        type=float,
        default=0.1,
        help="flag a setting whose judges' Spearman is this much below plain's",
    )
    p.add_argument(
        "--gap-change",
        type=float,
        default=0.05,
        help="flag a setting whose judges' avg-max-toxicity gap moved this much from plain's",
    )
    p.add_argument("--out", required=True, help="per-judge CSV, e.g. results/tables/judges.csv")
    p.add_argument("--out-pairs", required=True, help="judge-pair CSV, e.g. results/tables/judge_agreement.csv")


def read_texts(path: str | Path) -> dict[str, list[str]]:
    """Continuation texts grouped per prompt id (file order), from a per-continuation scores JSONL."""
    from bench.utils.io import iter_jsonl

    groups: dict[str, list[str]] = {}
    for lineno, rec in iter_jsonl(path):
        if "id" not in rec or not isinstance(rec.get("text"), str):
            raise DataError(f"{path}: line {lineno}: expected 'id' and a string 'text' (bench score's output)")
        groups.setdefault(str(rec["id"]), []).append(rec["text"])
    if not groups:
        raise DataError(f"{path}: no scored continuations")
    return groups


def _regroup(flat: list[float], like: list[list[str]]) -> list[list[float]]:
    out, k = [], 0
    for g in like:
        out.append(flat[k : k + len(g)])
        k += len(g)
    return out


def run(args: argparse.Namespace) -> int:
    from bench.metrics.cache import ScoreCache, score_texts
    from bench.metrics.calibration import Calibrated
    from bench.metrics.judges import flag_divergence, gap_change_vs_plain, pair_stats, setting_stats
    from bench.metrics.registry import build_scorer
    from bench.reporting.agreement_judges import JUDGE_COLUMNS, write_judge_tables
    from bench.reporting.tables import PLAIN, attach_scores, load_summaries
    from bench.utils.io import check_writable

    outs = [
        Path(args.out),
        Path(args.out).with_suffix(".md"),
        Path(args.out_pairs),
        Path(args.out_pairs).with_suffix(".md"),
    ]
    check_writable(*outs)
    df = attach_scores(load_summaries(args.summaries), args.summaries, args.scores)
    df = df[df["avg_max_toxicity"].notna()] if "avg_max_toxicity" in df else df.iloc[0:0]
    if df.empty:
        raise DataError(f"--summaries: no setting with toxicity scores among {len(args.summaries)} files")
    scorers = [build_scorer(s) for s in args.scorer]
    for s in scorers:
        if s.attribute != "toxicity":
            raise DataError(f"--scorer {s.name}: scores '{s.attribute}', expected a toxicity judge")
    cals: dict[str, Calibrated | None] = {}
    for s in scorers:
        cals[s.name] = None
        if args.calibration:
            try:
                cals[s.name] = Calibrated(args.calibration, s.name, s.version)
            except ModelError as exc:
                if "no entry for judge" not in str(exc):
                    raise  # another version's map, a broken file: refuse
                log.warning("%s", exc)
    cache = ScoreCache(args.cache) if args.cache else None
    judge_rows, pair_rows = [], []
    groups_by_id: dict[tuple, tuple[dict, bool]] = {}  # (task, method, beta, k, judge) -> ({id: scores}, calibrated)
    try:
        for _, run_row in df.iterrows():
            setting = {
                "task": run_row["task"],
                "method": run_row["method"],
                "beta": run_row["beta"],
                "top_k": run_row["top_k"],
            }
            by_id = read_texts(run_row["scores_file"])
            texts = list(by_id.values())
            flat = [t for g in texts for t in g]
            per_judge = {}
            for s in scorers:
                scores, _ = score_texts(s, flat, cache, f"{s.name} {setting['method']} {setting['beta']}")
                raw = _regroup(scores, texts)
                cal = cals[s.name]
                calg = _regroup(cal(scores).tolist(), texts) if cal else None
                per_judge[s.name] = (raw, calg)
                groups_by_id[(setting["task"], setting["method"], setting["beta"], setting["top_k"], s.name)] = (
                    dict(zip(by_id, calg if calg is not None else raw)),
                    calg is not None,
                )
                row = {
                    **setting,
                    "judge": s.name,
                    "judge_version": s.version,
                    "primary": s is scorers[0],
                    "n_prompts": len(texts),
                    "n_texts": len(flat),
                }
                row.update(setting_stats(raw, args.n_boot, args.seed))
                if calg is not None:
                    row.update(setting_stats(calg, args.n_boot, args.seed, prefix="cal_"))
                    cv = cal.cv
                    row.update(
                        cal_cv_mae=cv.get("cal_mae", math.nan),
                        cal_cv_mean_bias_sd=cv.get("cal_mean_bias_sd", math.nan),
                        cal_cv_toxic_rate_bias=cv.get("cal_toxic_rate_bias", math.nan),
                    )
                else:
                    row.update({k: math.nan for k in JUDGE_COLUMNS if k.startswith("cal_")})  # no calibration
                judge_rows.append(row)
            for a, b in itertools.combinations([s.name for s in scorers], 2):
                both = per_judge[a][1] is not None and per_judge[b][1] is not None
                ga, gb = (per_judge[a][1], per_judge[b][1]) if both else (per_judge[a][0], per_judge[b][0])
                pair_rows.append(
                    {
                        **setting,
                        "judge_a": a,
                        "judge_b": b,
                        "scale": "calibrated" if both else "raw",
                        **pair_stats(ga, gb, args.n_boot, args.seed),
                    }
                )
    finally:
        if cache:
            cache.close()
    plain = {(r["task"], r["top_k"], r["judge_a"], r["judge_b"]): r for r in pair_rows if r["method"] == PLAIN}
    for r in pair_rows:
        ref = plain.get((r["task"], r["top_k"], r["judge_a"], r["judge_b"]))
        r["spearman_vs_plain"] = r["spearman"] - ref["spearman"] if ref else math.nan
        r["gap_vs_plain"], r["gap_vs_plain_lo"], r["gap_vs_plain_hi"] = math.nan, math.nan, math.nan
        if ref is not None and ref is not r and ref["scale"] == r["scale"]:
            key = (r["task"], r["method"], r["beta"], r["top_k"])
            pkey = (ref["task"], ref["method"], ref["beta"], ref["top_k"])
            calibrated = r["scale"] == "calibrated"

            def grp(k, judge, calibrated=calibrated):
                g, is_cal = groups_by_id[(*k, judge)]
                return g if is_cal == calibrated else None

            parts = [grp(key, r["judge_a"]), grp(key, r["judge_b"]), grp(pkey, r["judge_a"]), grp(pkey, r["judge_b"])]
            if all(p is not None for p in parts):
                r["gap_vs_plain"], r["gap_vs_plain_lo"], r["gap_vs_plain_hi"] = gap_change_vs_plain(
                    *parts, args.n_boot, args.seed
                )
        elif ref is r:
            r["gap_vs_plain"] = 0.0
        r["diverges"], r["reason"] = flag_divergence(r, ref, args.spearman_drop, args.gap_change)
    write_judge_tables(outs, judge_rows, pair_rows, args)
    n_flag = sum(r["diverges"] for r in pair_rows)
    print(
        f"{len(judge_rows)} judge rows, {len(pair_rows)} pair rows, {n_flag} diverging settings -> {args.out}, "
        f"{args.out_pairs}"
    )
    return 0
