"""`bench agreement`: how far an offline toxicity scorer can stand in for Perspective.

On the RealToxicityPrompts rows of the shipped data (which carry the original Perspective scores of
prompt and continuation) it reports Spearman correlation with Perspective and ROC AUC against
Perspective >= 0.5 (the papers' toxic threshold); on Jigsaw comments, ROC AUC against the human labels.
Writes `<out>.csv` and a Markdown table next to it (`<out stem>.md`).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
from pathlib import Path

from bench.errors import DataError

log = logging.getLogger(__name__)

COLUMNS = ["scorer", "scorer_version", "reference", "n", "n_toxic", "spearman", "auc", "texts_per_s"]


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


def read_rtp_perspective(path: Path, max_rows: int | None) -> dict[str, tuple[list[str], list[float]]]:
    """{'prompts': (texts, perspective toxicity), 'continuations': (...)}; rows without a score are skipped."""
    from bench.utils.io import iter_jsonl

    out: dict[str, tuple[list[str], list[float]]] = {"prompts": ([], []), "continuations": ([], [])}
    n = 0
    for lineno, rec in iter_jsonl(path):
        for key, part in (("prompts", "prompt"), ("continuations", "continuation")):
            item = rec.get(part)
            if not isinstance(item, dict) or "text" not in item:
                raise DataError(f"{path}: line {lineno}: missing '{part}.text' (RealToxicityPrompts schema)")
            tox = item.get("toxicity")
            if tox is not None:
                out[key][0].append(item["text"])
                out[key][1].append(float(tox))
        n += 1
        if max_rows and n >= max_rows:
            break
    return out


def read_jigsaw_binary(path: Path, max_rows: int | None) -> tuple[list[str], list[int]]:
    import numpy as np
    import pandas as pd

    if not path.exists():
        raise DataError(f"{path}: file not found")
    df = pd.read_csv(path, header=None, names=["comment_text", "toxic"], keep_default_na=False)
    bad = ~df["toxic"].astype(str).isin(["0", "1"])
    if bad.any():
        raise DataError(f"{path}: row {int(bad.idxmax()) + 1}: column 2 must be 0/1 (comment_text,toxic; no header)")
    if max_rows and max_rows < len(df):  # the file is sorted by label: take evenly spaced rows, not the head
        df = df.iloc[np.linspace(0, len(df) - 1, max_rows).round().astype(int)]
    return df["comment_text"].astype(str).tolist(), df["toxic"].astype(int).tolist()


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


def _fmt(x) -> str:
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.3f}" if abs(x) < 100 else f"{x:.0f}"
    return str(x)


def write_tables(out: Path, rows: list[dict]) -> Path:
    from bench.utils.io import atomic_open

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
            fh.write("| " + " | ".join(_fmt(r[c]) for c in cols) + " |\n")
    return md


def run(args: argparse.Namespace) -> int:
    from bench.metrics.cache import ScoreCache
    from bench.metrics.registry import build_scorer

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
