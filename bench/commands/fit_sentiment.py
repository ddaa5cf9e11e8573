"""`bench fit-sentiment`: train the offline TF-IDF + logistic-regression sentiment scorer on SST-2 train,
check it on SST-2 dev, and write it as JSON (`tfidf-sst2:<out>`) plus `<out stem>.metrics.json` with the
dev accuracy. JSON, not pickle: a score file must never depend on loading untrusted code."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.errors import DataError
from bench.utils.argtypes import positive_int

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--train",
        default=None,
        help="SST-2 train: a TSV (label<TAB>sentence), the shipped folder or a hub id "
        "(default: the shipped sst2/train.tsv, else stanfordnlp/sst2)",
    )
    p.add_argument("--dev", default=None, help="SST-2 dev, same forms (default: the shipped sst2/dev.tsv)")
    p.add_argument("--out", required=True, help="model JSON to write")
    p.add_argument("--ngram-max", type=int, default=2)
    p.add_argument("--min-df", type=int, default=2)
    p.add_argument("--C", type=float, default=4.0)
    p.add_argument("--max-train", type=positive_int, default=None, help="only the first N training rows (quick checks)")


def load_split(source: str | None, split: str) -> tuple[list[dict], str]:
    """SST-2 rows via the data loader (shipped TSV, folder or hub id); returns rows and the source it read."""
    from bench.data.sst2 import load_sst2

    rows = load_sst2(source, split)
    info = getattr(rows, "info", None)
    used = getattr(info, "source", None) or source or "default"
    if not rows:
        raise DataError(f"SST-2 {split} from {used}: no rows")
    return [{"text": r["text"], "label": int(r["label"])} for r in rows], str(used)


def run(args: argparse.Namespace) -> int:

    import numpy as np

    from bench.metrics.tfidf import TfidfConfig, TfidfModel, fit_tfidf_logreg
    from bench.utils.io import atomic_outputs, check_writable, dumps_finite, write_json

    report = Path(args.out).with_suffix(".metrics.json")
    check_writable(args.out, report)
    train, train_src = load_split(args.train, "train")
    dev, dev_src = load_split(args.dev, "dev")
    if args.max_train:
        train = train[: args.max_train]
    cfg = TfidfConfig(ngram_max=args.ngram_max, min_df=args.min_df, C=args.C)
    log.info("fitting TF-IDF + logistic regression on %d rows of %s", len(train), train_src)
    obj = fit_tfidf_logreg([r["text"] for r in train], [r["label"] for r in train], cfg)
    model = TfidfModel(obj)
    prob = model.predict_proba([r["text"] for r in dev])
    acc = float(np.mean((prob >= 0.5) == np.array([r["label"] for r in dev], dtype=bool)))
    obj["train"] = {"source": train_src, "n": len(train), "dev_source": dev_src, "n_dev": len(dev), "dev_accuracy": acc}
    with atomic_outputs(args.out, report) as (tmp_model, tmp_report):  # the model and its report together
        Path(tmp_model).write_text(dumps_finite(obj, args.out), encoding="utf-8")
        write_json(
            report,
            {
                "dev_accuracy": acc,
                "n_train": len(train),
                "n_dev": len(dev),
                "train_source": train_src,
                "dev_source": dev_src,
                "config": obj["config"],
                "n_features": len(obj["vocabulary"]),
            },
            into=tmp_report,
        )
    print(f"dev accuracy {acc:.4f} on {len(dev)} sentences; model -> {args.out}; report -> {report}")
    return 0
