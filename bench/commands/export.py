"""`bench export RUN_DIR OUT`: a run's generations and per-continuation scores as a Parquet data set (with a data
card) that `datasets.load_dataset("parquet", data_files=...)` reads. See `bench.reporting.export`."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run's work folder (holds scores/, gen/, data/prompts/), e.g. runs/default")
    parser.add_argument("out", help="output folder: README.md (data card) and data/*.parquet")


def run(args: argparse.Namespace) -> int:
    from bench.reporting.export import write_export

    paths = write_export(args.run_dir, args.out)
    log.info("exported %s -> %s", args.run_dir, ", ".join(map(str, paths)))
    return 0
