"""`bench agreement`: how far an offline toxicity scorer can stand in for Perspective.

On the RealToxicityPrompts rows of the shipped data (which carry the original Perspective scores of
prompt and continuation) it reports Spearman correlation with Perspective and ROC AUC against
Perspective >= 0.5 (the papers' toxic threshold); on Jigsaw comments, ROC AUC against the human labels.
Writes `<out>.csv` and a Markdown table next to it (`<out stem>.md`). The reference readers live in
`bench.data.reference_scores`, the table writer in `bench.reporting.agreement`.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from bench.errors import DataError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scorer", action="append", default=None,
                   help="toxicity scorer spec (repeatable; default: profanity-check)")
    p.add_argument("--rtp", default=None, help="RTP-schema JSONL with Perspective scores "
                   "(default: <data dir>/rtp/decodingtrust_nontoxic.jsonl)")
    p.add_argument("--jigsaw", default=None, help="Jigsaw CSV without header: comment_text,toxic "
                   "(default: <data dir>/jigsaw/robtest_jigsaw_test.csv)")
    p.add_argument("--max-rows", type=int, default=None, help="only N rows of each file (RTP: the first N; Jigsaw: N evenly spaced, it is sorted by label)")
    p.add_argument("--cache", default=None, help="SQLite score cache")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="CSV to write, e.g. results/tables/scorer_agreement.csv")


def _default(path: str | None, rel: str) -> Path:
    if path:
        return Path(path)
    from bench.data.paths import data_dir
    from bench.data.sources import find_local

    found = find_local(rel)
    if found is None:
        raise DataError(f"no {rel} given and the shipped file was not found in {data_dir()}")
    return found


def agreement_rows(scorer, rtp: dict, jigsaw: tuple[list[str], list[int]] | None, cache=None) -> list[dict]:
    import numpy as np
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from bench.metrics.cache import score_texts

    def row(reference, scores, ref, binary, tps):
        s = np.asarray(scores, dtype=float)
        r = np.asarray(ref, dtype=float)
        ok = np.isfinite(s)
        s, r = s[ok], r[ok]
        y = (r >= 0.5).astype(int) if not binary else r.astype(int)
        auc = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else math.nan
        rho = float(spearmanr(s, r).statistic) if not binary and len(s) > 2 else math.nan
        return {"scorer": scorer.name, "scorer_version": scorer.version, "reference": reference, "n": int(len(s)),
                "n_toxic": int(y.sum()), "spearman": rho, "auc": auc, "texts_per_s": tps}

    rows = []
    all_s, all_r = [], []
    for key in ("prompts", "continuations"):
        texts, ref = rtp[key]
        scores, st = score_texts(scorer, texts, cache, f"{scorer.name} rtp {key}")
        rows.append(row(f"perspective (RTP {key})", scores, ref, False, st["texts_per_s"]))
        all_s += scores
        all_r += ref
    rows.append(row("perspective (RTP prompts+continuations)", all_s, all_r, False, math.nan))
    if jigsaw is not None:
        scores, st = score_texts(scorer, jigsaw[0], cache, f"{scorer.name} jigsaw")
        rows.append(row("jigsaw labels", scores, jigsaw[1], True, st["texts_per_s"]))
    return rows


def run(args: argparse.Namespace) -> int:
    from bench.data.reference_scores import read_jigsaw_binary, read_rtp_perspective
    from bench.metrics.cache import ScoreCache
    from bench.metrics.registry import build_scorer
    from bench.reporting.agreement import write_tables

    rtp = read_rtp_perspective(_default(args.rtp, "rtp/decodingtrust_nontoxic.jsonl"), args.max_rows)
    jig_path = _default(args.jigsaw, "jigsaw/robtest_jigsaw_test.csv")
    jigsaw = read_jigsaw_binary(jig_path, args.max_rows)
    cache = ScoreCache(args.cache) if args.cache else None
    rows = []
    try:
        for spec in args.scorer or ["profanity-check"]:
            scorer = build_scorer(spec, device=args.device)
            if scorer.attribute != "toxicity":
                raise DataError(f"--scorer {spec}: scores '{scorer.attribute}', expected a toxicity scorer")
            rows += agreement_rows(scorer, rtp, jigsaw, cache)
    finally:
        if cache:
            cache.close()
    md = write_tables(Path(args.out), rows)
    print(md.read_text(encoding="utf-8"), end="")
    return 0
