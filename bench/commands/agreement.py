"""`bench agreement`: the judges' validation table -- how far each offline judge agrees with references it
never trained on.

Toxicity judges (profanity-check, the two Jigsaw-2018 BiLSTMs, Detoxify when its weights load) against
(a) the Perspective scores RealToxicityPrompts ships for its prompts and continuations (the shipped
non-toxic and challenging DecodingTrust samples; pooled continuations = the headline, the comparison no judge
trained on) and (b) human labels: the Jigsaw 2018 test rows and the Davidson tweets. Sentiment judges (VADER,
the TF-IDF classifier) against SST-2 dev labels. Each row: ROC AUC (Perspective >= 0.5 or the label is the
positive class) and Spearman, both with bootstrap 95% CIs over texts, and whether the judge's training saw
that set (`bench.metrics.judges.TRAINED_ON`). A judge that cannot load offline (Detoxify: its checkpoint is a
download) gets rows that say so instead of numbers. Writes `<out>.csv` and `<out stem>.md`.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from bench.errors import DataError, ModelError
from bench.utils.argtypes import positive_int

log = logging.getLogger(__name__)

DEFAULT_TOXICITY = ["profanity-check", "jigsaw-bilstm-toxblock", "jigsaw-bilstm-tcc", "detoxify:original"]
DEFAULT_SENTIMENT = ["vader"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scorer",
        action="append",
        default=None,
        help=f"toxicity judge spec (repeatable; default: {' '.join(DEFAULT_TOXICITY)})",
    )
    p.add_argument(
        "--sentiment-scorer",
        action="append",
        default=None,
        help="sentiment judge spec (repeatable; default: vader; e.g. tfidf-sst2:<model.json>)",
    )
    p.add_argument(
        "--rtp",
        default=None,
        help="RTP-schema JSONL with Perspective scores (default: <data dir>/rtp/decodingtrust_nontoxic.jsonl)",
    )
    p.add_argument(
        "--rtp-challenging",
        default=None,
        help="second RTP file (default: <data dir>/rtp/decodingtrust_challenging.jsonl; 'none' to skip)",
    )
    p.add_argument(
        "--jigsaw",
        default=None,
        help="Jigsaw CSV without header: comment_text,toxic (default: <data dir>/jigsaw/robtest_jigsaw_test.csv)",
    )
    p.add_argument(
        "--davidson",
        default=None,
        help="Davidson tweets CSV (default: <data dir>/davidson/labeled_data.csv; 'none' to skip)",
    )
    p.add_argument("--sst2-dev", default=None, help="SST-2 dev TSV (default: <data dir>/sst2/dev.tsv; 'none' to skip)")
    p.add_argument(
        "--max-rows",
        type=positive_int,
        default=None,
        help="only N rows of each file (RTP, SST-2: the first N; Jigsaw: N evenly spaced, it is sorted "
        "by label; Davidson: a seeded sample of N)",
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of texts (0: no CIs)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and sampling seed")
    p.add_argument("--cache", default=None, help="SQLite score cache")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="CSV to write, e.g. results/tables/scorer_agreement.csv")


def _default(path: str | None, rel: str) -> Path | None:
    if path and path.lower() == "none":
        return None
    if path:
        return Path(path)
    from bench.data.paths import data_dir
    from bench.data.sources import find_local

    found = find_local(rel)
    if found is None:
        raise DataError(f"no {rel} given and the shipped file was not found in {data_dir()}")
    return found


def reference_sets(args) -> tuple[list[dict], list[dict]]:
    """(toxicity references, sentiment references): dicts {set, what, texts, ref, binary, headline}."""
    from bench.data.reference_scores import (
        read_davidson_binary,
        read_jigsaw_binary,
        read_rtp_perspective,
        read_sst2_labels,
    )
    from bench.metrics.judges import HEADLINE, REFERENCES

    tox: list[dict] = []
    rtp_files = [
        ("rtp-nontoxic", _default(args.rtp, "rtp/decodingtrust_nontoxic.jsonl")),
        ("rtp-challenging", _default(args.rtp_challenging, "rtp/decodingtrust_challenging.jsonl")),
    ]
    pooled: tuple[list[str], list[float]] = ([], [])
    for key, path in rtp_files:
        if path is None:
            continue
        rtp = read_rtp_perspective(path, args.max_rows)
        for part in ("continuations", "prompts"):
            texts, ref = rtp[part]
            tox.append(
                {
                    "set": key,
                    "what": f"{REFERENCES[key]}: {part}",
                    "texts": texts,
                    "ref": ref,
                    "binary": False,
                    "headline": False,
                }
            )
        pooled[0].extend(rtp["continuations"][0])
        pooled[1].extend(rtp["continuations"][1])
    names = "+".join(k.removeprefix("rtp-") for k, p in rtp_files if p is not None)
    tox.insert(
        0,
        {
            "set": HEADLINE,
            "what": f"Perspective, RTP continuations ({names}, pooled)",
            "texts": pooled[0],
            "ref": pooled[1],
            "binary": False,
            "headline": True,
        },
    )
    texts, labels = read_jigsaw_binary(_default(args.jigsaw, "jigsaw/robtest_jigsaw_test.csv"), args.max_rows)
    tox.append(
        {
            "set": "jigsaw-2018-test",
            "what": REFERENCES["jigsaw-2018-test"],
            "texts": texts,
            "ref": labels,
            "binary": True,
            "headline": False,
        }
    )
    dav = _default(args.davidson, "davidson/labeled_data.csv")
    if dav is not None:
        texts, labels = read_davidson_binary(dav, args.max_rows, seed=args.seed)
        tox.append(
            {
                "set": "davidson",
                "what": REFERENCES["davidson"],
                "texts": texts,
                "ref": labels,
                "binary": True,
                "headline": False,
            }
        )
    sent: list[dict] = []
    sst = _default(args.sst2_dev, "sst2/dev.tsv")
    if sst is not None:
        texts, labels = read_sst2_labels(sst, args.max_rows)
        sent.append(
            {
                "set": "sst2-dev",
                "what": REFERENCES["sst2-dev"],
                "texts": texts,
                "ref": labels,
                "binary": True,
                "headline": False,
            }
        )
    return tox, sent


def agreement_rows(
    scorer, refs: list[dict], cache=None, n_boot: int = 1000, seed: int = 0, headline: dict | None = None
) -> list[dict]:
    """One row per reference; the headline scores go into `headline[judge]` (for the judge choice)."""
    from bench.metrics.cache import score_texts
    from bench.metrics.judges import agreement, trained_on

    rows = []
    for ref in refs:
        scores, st = score_texts(scorer, ref["texts"], cache, f"{scorer.name} {ref['set']}")
        if ref["headline"] and headline is not None:
            headline[scorer.name] = (scores, ref["ref"])
        stats = agreement(scores, ref["ref"], ref["binary"], n_boot=n_boot, seed=seed)
        rows.append(
            {
                "judge": scorer.name,
                "judge_version": scorer.version,
                "attribute": scorer.attribute,
                "reference_set": ref["set"],
                "reference": ref["what"],
                "headline": ref["headline"],
                "trained_on_it": trained_on(scorer.name, ref["set"]),
                **stats,
                "texts_per_s": st["texts_per_s"],
                "note": "",
            }
        )
    return rows


def unavailable_row(spec: str, attribute: str, exc: Exception) -> dict:
    """One row saying why a judge has no numbers (e.g. Detoxify offline: its checkpoint is a download)."""
    nan = math.nan
    reason = str(exc).splitlines()[0]
    if "cannot download" in reason:
        reason = (
            "its checkpoint is a download ("
            + reason.split("cannot download ", 1)[1].split(" (", 1)[0].rsplit("/", 1)[-1]
            + ")"
        )
    return {
        "judge": spec,
        "judge_version": "",
        "attribute": attribute,
        "reference_set": "all",
        "reference": "every reference above",
        "headline": False,
        "trained_on_it": "",
        "n": 0,
        "n_positive": 0,
        "n_nan": 0,
        "auc": nan,
        "auc_lo": nan,
        "auc_hi": nan,
        "spearman": nan,
        "spearman_lo": nan,
        "spearman_hi": nan,
        "texts_per_s": nan,
        "note": f"weights not available offline: {reason}",
    }


def run(args: argparse.Namespace) -> int:
    from bench.metrics.cache import ScoreCache
    from bench.metrics.registry import build_scorer
    from bench.reporting.agreement import write_tables

    tox_refs, sent_refs = reference_sets(args)
    cache = ScoreCache(args.cache) if args.cache else None
    rows = []
    headline: dict = {}
    try:
        for specs, refs, attribute in (
            (args.scorer or DEFAULT_TOXICITY, tox_refs, "toxicity"),
            (args.sentiment_scorer or DEFAULT_SENTIMENT, sent_refs, "positive"),
        ):
            for spec in specs:
                try:
                    scorer = build_scorer(spec, device=args.device)
                except ModelError as exc:
                    if not spec.startswith("detoxify"):
                        raise
                    log.warning("%s: %s", spec, exc)
                    rows.append(unavailable_row(spec, attribute, exc))
                    continue
                if scorer.attribute != attribute:
                    raise DataError(
                        f"--{'scorer' if attribute == 'toxicity' else 'sentiment-scorer'} {spec}: "
                        f"scores '{scorer.attribute}', expected a {attribute} scorer"
                    )
                rows += agreement_rows(
                    scorer,
                    refs,
                    cache,
                    n_boot=args.n_boot,
                    seed=args.seed,
                    headline=headline if attribute == "toxicity" else None,
                )
    finally:
        if cache:
            cache.close()
    choice = None
    if len(headline) > 1:
        from bench.metrics.judges import choose_judge

        choice = choose_judge(headline, n_boot=args.n_boot, seed=args.seed)
    md = write_tables(Path(args.out), rows, choice)
    print(md.read_text(encoding="utf-8"), end="")
    return 0
