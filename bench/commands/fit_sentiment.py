"""`bench fit-sentiment`: train the offline TF-IDF + logistic-regression sentiment scorer on SST-2 train,
check it on SST-2 dev, and write it as JSON (`tfidf-sst2:<out>`) plus `<out stem>.metrics.json` with the
dev accuracy. JSON, not pickle: a score file must never depend on loading untrusted code."""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from bench.errors import DataError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", default=None, help="SST-2 train: a .tsv (label<TAB>text) or a source the data loader knows "
                   "(default: <data dir>/sst2/train.tsv)")
    p.add_argument("--dev", default=None, help="SST-2 dev, same forms (default: <data dir>/sst2/dev.tsv)")
    p.add_argument("--out", required=True, help="model JSON to write")
    p.add_argument("--ngram-max", type=int, default=2)
    p.add_argument("--min-df", type=int, default=2)
    p.add_argument("--C", type=float, default=4.0)
    p.add_argument("--max-train", type=int, default=None, help="only the first N training rows (quick checks)")


def read_sst2_tsv(path: str | Path) -> list[dict]:
    """GLUE SST-2 TSV with a header whose first column is `label` (the text column's name varies)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if not header or header[0] != "label" or len(header) != 2:
            raise DataError(f"{path}: line 1: expected header 'label<TAB>sentence', got {header}")
        for lineno, row in enumerate(reader, start=2):
            if len(row) != 2 or row[0] not in ("0", "1"):
                raise DataError(f"{path}: line {lineno}: expected '0|1<TAB>text', got {row[:2]}")
            rows.append({"text": row[1], "label": int(row[0])})
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def load_split(source: str | None, split: str) -> tuple[list[dict], str]:
    if source is None:
        from bench.data.paths import data_dir

        d = data_dir()
        if d is None:
            raise DataError(f"--{split}: not given and no data mirror found (set BENCH_DATA_DIR)")
        source = str(d / "sst2" / f"{'dev' if split == 'dev' else 'train'}.tsv")
    if source.endswith(".tsv"):
        return read_sst2_tsv(source), source
    try:
        from bench.data.sst2 import load_sst2
    except ImportError as exc:
        raise DataError(f"--{split} {source}: not a .tsv file and no SST-2 loader available") from exc
    hf_split = "validation" if split == "dev" else split
    return [{"text": r["text"], "label": int(r["label"])} for r in load_sst2(source, hf_split)], source


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from bench.metrics.tfidf import TfidfConfig, TfidfModel, fit_tfidf_logreg
    from bench.utils.io import atomic_open, write_json

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
    with atomic_open(args.out) as fh:
        json.dump(obj, fh)
    report = Path(args.out).with_suffix(".metrics.json")
    write_json(report, {"dev_accuracy": acc, "n_train": len(train), "n_dev": len(dev), "train_source": train_src,
                        "dev_source": dev_src, "config": obj["config"], "n_features": len(obj["vocabulary"])})
    print(f"dev accuracy {acc:.4f} on {len(dev)} sentences; model -> {args.out}; report -> {report}")
    return 0
