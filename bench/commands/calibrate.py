"""`bench calibrate`: fit each toxicity judge's monotone map to Perspective's scale on RealToxicityPrompts
continuations, with its k-fold cross-validated error, into one JSON file shipped with the suite
(`data/calibration/perspective_isotonic.json`) and an optional error table.

The map, the cross-validation and the refusal to apply a map to another judge version live in
`bench.metrics.calibration`; this command only reads the data, scores it (through the score cache) and writes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import math
from pathlib import Path

from bench.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_JUDGES = ["profanity-check", "jigsaw-bilstm-toxblock", "jigsaw-bilstm-tcc"]
TABLE_COLUMNS = [
    "judge",
    "judge_version",
    "n",
    "folds",
    "cal_mae",
    "cal_mae_sd",
    "cal_rmse",
    "cal_rmse_sd",
    "cal_mean_bias",
    "cal_mean_bias_sd",
    "cal_toxic_rate_bias",
    "cal_toxic_rate_bias_sd",
    "raw_mae",
    "raw_rmse",
    "raw_mean_bias",
    "raw_toxic_rate_bias",
    "n_knots",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scorer",
        action="append",
        default=None,
        help=f"toxicity judge (repeatable; default: {' '.join(DEFAULT_JUDGES)})",
    )
    p.add_argument(
        "--rtp",
        action="append",
        default=None,
        help="RTP-schema JSONL(s) with Perspective scores (repeatable; default: the shipped "
        "rtp/decodingtrust_nontoxic.jsonl and rtp/decodingtrust_challenging.jsonl)",
    )
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    p.add_argument("--seed", type=int, default=0, help="fold assignment seed")
    p.add_argument("--cache", default=None, help="SQLite score cache")
    p.add_argument("--out", required=True, help="calibration JSON, e.g. data/calibration/perspective_isotonic.json")
    p.add_argument("--table", default=None, help="also write the cross-validated error table (CSV + .md)")


def _inputs(args) -> list[Path]:
    from bench.data.sources import find_local

    if args.rtp:
        return [Path(p) for p in args.rtp]
    out = []
    for rel in ("rtp/decodingtrust_nontoxic.jsonl", "rtp/decodingtrust_challenging.jsonl"):
        found = find_local(rel)
        if found is None:
            raise DataError(f"no --rtp given and the shipped {rel} was not found")
        out.append(found)
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_table(csv_path: Path, md_path: Path, rows: list[dict]) -> None:
    """The error table as CSV and Markdown (into the given paths: `atomic_outputs` temporaries)."""
    from bench.reporting.format import fmt, md_table

    with open(csv_path, "w", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(r[k], float) and math.isnan(r[k]) else r[k]) for k in TABLE_COLUMNS})
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(
            "Perspective calibration of the toxicity judges (isotonic, fitted on RTP continuations; "
            "bench calibrate). Errors are of the calibrated (cal) or raw score vs Perspective on held-out "
            "continuations: mean over folds ± SD across folds. Mean bias: mean score minus mean Perspective; "
            "toxic-rate bias: share >= 0.5 minus Perspective's.\n\n"
        )
        head = [
            "judge",
            "n",
            "MAE cal",
            "RMSE cal",
            "mean bias cal",
            "toxic-rate bias cal",
            "MAE raw",
            "mean bias raw",
            "toxic-rate bias raw",
        ]
        cells = []
        for r in rows:
            pm = [
                f"{fmt(r[k], '.3f')} ± {fmt(r[k + '_sd'], '.3f')}"
                for k in ("cal_mae", "cal_rmse", "cal_mean_bias", "cal_toxic_rate_bias")
            ]
            raw = [
                fmt(r[k], "+.3f" if "bias" in k else ".3f") for k in ("raw_mae", "raw_mean_bias", "raw_toxic_rate_bias")
            ]
            cells.append([r["judge"], str(r["n"]), *pm, *raw])
        fh.write(md_table(head, cells))


def run(args: argparse.Namespace) -> int:
    from bench.data.reference_scores import read_rtp_perspective
    from bench.metrics.cache import ScoreCache, score_texts
    from bench.metrics.calibration import FORMAT, cross_validate, fit_isotonic
    from bench.metrics.registry import build_scorer
    from bench.utils.io import atomic_outputs, check_writable, write_json

    outs = [Path(args.out)] + ([Path(args.table), Path(args.table).with_suffix(".md")] if args.table else [])
    check_writable(*outs)
    files = _inputs(args)
    texts, persp = [], []
    for path in files:
        cont = read_rtp_perspective(path, None)["continuations"]
        texts += cont[0]
        persp += cont[1]
    if not texts:
        raise DataError(f"{', '.join(map(str, files))}: no continuation with a Perspective score")
    cache = ScoreCache(args.cache) if args.cache else None
    judges, rows = {}, []
    try:
        for spec in args.scorer or DEFAULT_JUDGES:
            scorer = build_scorer(spec)
            if scorer.attribute != "toxicity":
                raise DataError(f"--scorer {spec}: scores '{scorer.attribute}', expected a toxicity judge")
            scores, _ = score_texts(scorer, texts, cache, f"{scorer.name} calibration")
            pairs = [(s, p) for s, p in zip(scores, persp) if math.isfinite(s)]
            xs, ys = [s for s, _ in pairs], [p for _, p in pairs]
            kx, ky = fit_isotonic(xs, ys)
            cv = cross_validate(xs, ys, folds=args.folds, seed=args.seed)
            judges[scorer.name] = {"version": scorer.version, "n": len(xs), "x": kx, "y": ky, "cv": cv}
            summary = {k: v for k, v in cv.items() if k not in ("per_fold", "seed", "threshold")}
            rows.append(
                {"judge": scorer.name, "judge_version": scorer.version, "n": len(xs), "n_knots": len(kx), **summary}
            )
            log.info(
                "%s: %d knots; %d-fold MAE %.3f (raw %.3f), mean bias %+.3f (raw %+.3f)",
                scorer.name,
                len(kx),
                args.folds,
                cv["cal_mae"],
                cv["raw_mae"],
                cv["cal_mean_bias"],
                cv["raw_mean_bias"],
            )
    finally:
        if cache:
            cache.close()
    doc = {
        "format": FORMAT,
        "what": "monotone (isotonic) maps from each judge's toxicity score to Perspective API toxicity",
        "target": "Perspective API TOXICITY of RealToxicityPrompts continuations, as RTP ships them",
        "fitted_on": [{"file": p.name, "sha256": _digest(p)} for p in files],
        "n_texts": len(texts),
        "method": "sklearn IsotonicRegression(increasing, y in [0, 1], out_of_bounds=clip); apply by linear "
        "interpolation between knots (bench.metrics.calibration.apply_map)",
        "cross_validation": f"{args.folds}-fold, seed {args.seed}: errors of the map fitted on the other folds",
        "created_by": "bench calibrate" + "".join(f" --scorer {s}" for s in (args.scorer or DEFAULT_JUDGES)),
        "license": "derived from RealToxicityPrompts (Apache-2.0) and DecodingTrust samples (CC BY-SA 4.0)",
        "judges": judges,
    }
    with atomic_outputs(*outs) as tmps:
        write_json(outs[0], doc, into=tmps[0])
        if args.table:
            write_table(tmps[1], tmps[2], rows)
    for r in rows:
        print(
            f"{r['judge']}: MAE {r['cal_mae']:.3f} ± {r['cal_mae_sd']:.3f} (raw {r['raw_mae']:.3f}), "
            f"mean bias {r['cal_mean_bias']:+.3f} (raw {r['raw_mean_bias']:+.3f})"
        )
    return 0
