"""`bench prepare`: build train / held-out splits and prompt files from a hub id or a local file.

Every output gets a `<out>.source.json` sidecar: which source was used (hub id or absolute path), how many rows
were read / kept / skipped and why, the seed and sizes, so a result can always be traced to its data.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.errors import DataError
from bench.utils.argtypes import finite_float, non_negative_int, positive_int

log = logging.getLogger(__name__)


def sidecar_path(out: str | Path) -> Path:
    return Path(f"{out}.source.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.data.registry import TRAIN_DATASETS
    from bench.data.sentiment_prompts import SENTIMENTS

    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    t = sub.add_parser("train", help="seeded train / held-out split of a labelled training set")
    t.add_argument("--dataset", required=True, choices=sorted(TRAIN_DATASETS))
    t.add_argument(
        "--source",
        action="append",
        default=None,
        help="hub id or file, plain or .gz (absolute, or relative to the shipped data/, $BENCH_DATA_DIR "
        "or the cwd); repeat to combine files; default: the data set's shipped file, else its hub id",
    )
    t.add_argument("--split", default="train", help="hub split to read (default: train)")
    t.add_argument(
        "--n-train", type=positive_int, default=None, help="training rows (default: all that remain after held-out)"
    )
    t.add_argument(
        "--n-heldout",
        type=non_negative_int,
        default=0,
        help="held-out rows, drawn first so stable across --n-train (0: none)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out-train", required=True, type=Path)
    t.add_argument("--out-heldout", type=Path, default=None)
    t.add_argument("--balance", action="store_true", help="equal numbers of label >= 0.5 and < 0.5 rows per set")
    t.add_argument("--attribute", default=None, help="label used by --balance (default: the data set's)")
    t.add_argument(
        "--davidson-label",
        choices=("binary", "share"),
        default="binary",
        help="Davidson toxicity: 1 for hate/offensive class, or the annotators' share",
    )

    p = sub.add_parser("prompts", help="a seeded sample of evaluation prompts")
    p.add_argument("--dataset", required=True, choices=("rtp", "sentiment"))
    p.add_argument("--source", default=None, help="hub id or file/folder (default: the shipped file, else the hub)")
    p.add_argument("--sentiment", choices=SENTIMENTS, default=None, help="which sentiment prompt file")
    p.add_argument("--n", type=positive_int, default=None, help="number of prompts (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--max-toxicity",
        type=finite_float,
        default=None,
        help="RTP: keep prompts with toxicity below this (default 0.5; with --challenging: no filter)",
    )
    p.add_argument(
        "--challenging",
        action="store_true",
        help="RTP: only prompts flagged `challenging` (default source: the shipped "
        "rtp/decodingtrust_challenging.jsonl, else the hub)",
    )
    p.add_argument("--allow-fewer", action="store_true", help="use all prompts when fewer than --n exist")
    p.add_argument("--out", required=True, type=Path)


def _common_labels(parts: list) -> list[str]:
    keys = None
    for recs in parts:
        for r in recs:
            k = set(r["labels"])
            keys = k if keys is None else keys & k
    return sorted(keys or ())


def run_train(args: argparse.Namespace) -> int:
    from bench.data.registry import TRAIN_DATASETS
    from bench.data.splits import dedupe_texts, split_train_heldout
    from bench.utils.io import DIGEST_KEY, atomic_outputs, check_writable, sha256_file, write_json, write_jsonl

    default_attr, loader = TRAIN_DATASETS[args.dataset]
    if args.n_heldout > 0 and args.out_heldout is None:
        raise DataError("prepare train: --n-heldout > 0 needs --out-heldout")
    paths = [p for out in (args.out_train, args.out_heldout) if out for p in (out, sidecar_path(out))]
    check_writable(*paths)
    sources = args.source or [None]
    parts = [loader(src, args.split, davidson_label=args.davidson_label) for src in sources]
    labels = _common_labels(parts)
    all_keys = sorted(set().union(*(set(r["labels"]) for recs in parts for r in recs)))
    dropped_attrs = [k for k in all_keys if k not in labels]
    if dropped_attrs:
        log.warning(
            "sources disagree on label attributes; keeping the common ones %s, dropping %s", labels, dropped_attrs
        )
    records = [{"text": r["text"], "labels": {k: r["labels"][k] for k in labels}} for recs in parts for r in recs]
    records, n_dup = dedupe_texts(records)
    if n_dup:
        log.info("dropped %d rows whose text repeats an earlier row", n_dup)
    attr = args.attribute or default_attr
    if attr not in labels:
        raise DataError(f"--attribute {attr!r} is not a label of {args.dataset}; labels: {labels}")
    balance = (lambda r: int(r["labels"][attr] >= 0.5)) if args.balance else None
    train, held = split_train_heldout(records, args.n_train, args.n_heldout, args.seed, balance=balance)

    meta = {
        "dataset": args.dataset,
        "sources": [p.info.to_json() for p in parts],
        "labels": labels,
        "dropped_attributes": dropped_attrs,
        "duplicates_dropped": n_dup,
        "available": len(records),
        "seed": args.seed,
        "n_train": args.n_train,
        "n_heldout": args.n_heldout,
        "balance": bool(args.balance),
        "attribute": attr,
    }
    outs = [("train", args.out_train, train)] + ([("heldout", args.out_heldout, held)] if args.out_heldout else [])
    with atomic_outputs(*paths) as temps:  # the splits and their sidecars appear together
        for (role, out, recs), tmp, tmp_side in zip(outs, temps[0::2], temps[1::2]):
            pos = sum(r["labels"][attr] >= 0.5 for r in recs)
            write_jsonl(out, recs, into=tmp)
            write_json(
                sidecar_path(out),
                {
                    **meta,
                    "role": role,
                    "written": len(recs),
                    DIGEST_KEY: sha256_file(tmp),
                    "class_counts": {f"{attr}>=0.5": pos, f"{attr}<0.5": len(recs) - pos},
                },
                into=tmp_side,
            )
            log.info("wrote %d %s rows to %s (%d with %s >= 0.5)", len(recs), role, out, pos, attr)
    print(f"train={len(train)} heldout={len(held)} source={','.join(p.info.source for p in parts)}")
    return 0


def run_prompts(args: argparse.Namespace) -> int:
    from bench.utils.io import DIGEST_KEY, atomic_outputs, check_writable, sha256_file, write_json, write_jsonl

    check_writable(args.out, sidecar_path(args.out))
    n = args.n
    if args.dataset == "rtp":
        from bench.data.rtp import load_rtp

        if args.sentiment:
            raise DataError("prepare prompts: --sentiment applies to --dataset sentiment, not rtp")
        max_tox = args.max_toxicity if args.max_toxicity is not None else (None if args.challenging else 0.5)
        recs = load_rtp(
            args.source,
            n=n,
            seed=args.seed,
            max_toxicity=max_tox,
            allow_fewer=args.allow_fewer,
            challenging=args.challenging,
        )
    else:
        from bench.data.sentiment_prompts import load_sentiment_prompts

        if args.challenging:
            raise DataError("prepare prompts: --challenging applies to --dataset rtp, not sentiment")
        recs = load_sentiment_prompts(args.source, args.sentiment, n=n, seed=args.seed, allow_fewer=args.allow_fewer)
    with atomic_outputs(args.out, sidecar_path(args.out)) as (tmp, tmp_side):
        write_jsonl(args.out, recs, into=tmp)  # its sha256 in the sidecar: `bench generate` verifies it
        write_json(
            sidecar_path(args.out),
            {
                **recs.info.to_json(),
                "seed": args.seed,
                "n": args.n,
                DIGEST_KEY: sha256_file(tmp),
                "written": len(recs),
                "prompt_dataset": args.dataset,
            },
            into=tmp_side,
        )
    log.info("wrote %d prompts to %s", len(recs), args.out)
    print(f"prompts={len(recs)} source={recs.info.source}")
    return 0


def run(args: argparse.Namespace) -> int:
    return run_train(args) if args.mode == "train" else run_prompts(args)
