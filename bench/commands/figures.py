"""`bench figures`: trade-off plots (toxicity / positive rate vs. perplexity over beta) from score summaries."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summaries", nargs="+", required=True, help="summary CSVs from `bench score --out-summary`")
    parser.add_argument("--out-dir", required=True, help="folder for toxicity_tradeoff.png, sentiment_tradeoff.png")


def run(args: argparse.Namespace) -> int:
    from bench.reporting.figures import write_figures
    from bench.reporting.tables import load_summaries

    for path in write_figures(load_summaries(args.summaries), args.out_dir):
        print(path)
    return 0
