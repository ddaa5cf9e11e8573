"""`bench tables`: per-run score summaries -> <family>.{csv,md,tex} tables (toxicity, sentiment)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summaries", nargs="+", required=True, help="summary CSVs from `bench score --out-summary`")
    parser.add_argument("--out-dir", required=True, help="folder for toxicity.{csv,md,tex}, sentiment.{csv,md,tex}")
    parser.add_argument("--formats", default="csv,md,tex", help="comma-separated subset of csv,md,tex")


def run(args: argparse.Namespace) -> int:
    from bench.reporting.tables import load_summaries, write_tables

    df = load_summaries(args.summaries)
    for path in write_tables(df, args.out_dir, [f.strip() for f in args.formats.split(",") if f.strip()]):
        print(path)
    return 0
