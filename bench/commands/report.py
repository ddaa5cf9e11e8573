"""`bench report`: the researcher's self-contained HTML report (interactive trade-offs, sampled continuations,
the `bench compare` verdict, the cost / flags tables when they exist). See `bench.reporting.report`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.utils.argtypes import positive_int

log = logging.getLogger(__name__)
TITLES = {"flags": "Backfire flags", "cost": "Cost per stage"}  # extra tables' section titles, by file stem


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summaries", nargs="+", required=True, help="summary CSVs from `bench score --out-summary`")
    parser.add_argument(
        "--scores",
        nargs="+",
        required=True,
        help="per-continuation score JSONLs from `bench score`, one per summary, same order",
    )
    parser.add_argument(
        "--generations",
        nargs="+",
        required=True,
        help="generation JSONLs from `bench generate` (the prompts), one per summary, same order",
    )
    parser.add_argument("--out", required=True, help="the HTML file to write")
    parser.add_argument(
        "--tables-dir",
        default=None,
        help="the run's tables folder: its toxicity / sentiment CSVs are compared with the reference",
    )
    parser.add_argument(
        "--reference",
        default=None,
        help="reference tables folder (default: the same files as committed at --rev, if any)",
    )
    parser.add_argument("--rev", default="HEAD", help="git revision of the default reference (default: HEAD)")
    parser.add_argument(
        "--extra-tables",
        nargs="*",
        default=[],
        help="CSV tables to include when they exist (e.g. cost.csv, flags.csv); absent: skipped",
    )
    parser.add_argument("--title", default="bench report", help="the report's title")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random sampled continuation")
    parser.add_argument(
        "--random-samples",
        type=positive_int,
        default=1,
        help="random (prompt, sample) pairs shown per setting, besides the highest and lowest",
    )


def comparison(tables_dir: str | None, reference: str | None, rev: str):
    """(compare rows, reference name) or (None, why not): a missing reference is a note, not an error."""
    import pandas as pd

    from bench.commands.compare import DEFAULT_TABLES
    from bench.errors import DataError
    from bench.reporting.compare import compare_tables, read_table, read_table_at_revision

    if not tables_dir:
        return None, "no run tables given (--tables-dir): no comparison"
    rows, wheres = [], []
    for name in DEFAULT_TABLES:
        run_path = Path(tables_dir) / f"{name}.csv"
        if not run_path.exists():
            continue
        try:
            ref = read_table(Path(reference) / f"{name}.csv") if reference else read_table_at_revision(run_path, rev)
        except DataError as exc:
            return None, f"no committed reference to compare with ({exc})"
        rows.append(compare_tables(ref, read_table(run_path)))
        wheres.append(ref.where)
    if not rows:
        return None, f"{tables_dir}: no toxicity / sentiment table to compare"
    return (pd.concat(rows, ignore_index=True), ", ".join(wheres)), None


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from bench.errors import DataError
    from bench.reporting.report import build_report
    from bench.utils.io import atomic_open, check_writable, created_folders

    check_writable(args.out)
    compared, note = comparison(args.tables_dir, args.reference, args.rev)
    extra = []
    for path in map(Path, args.extra_tables):
        if not path.exists():
            log.info("%s: absent, not included", path)
            continue
        try:
            extra.append((TITLES.get(path.stem, path.stem.replace("_", " ")), pd.read_csv(path)))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    text = build_report(
        args.summaries,
        args.scores,
        args.generations,
        title=args.title,
        seed=args.seed,
        n_random=args.random_samples,
        comparison=compared,
        comparison_note=note,
        extra_tables=extra,
    )
    with created_folders(args.out), atomic_open(args.out) as fh:
        fh.write(text)
    log.info("report -> %s (%.1f MB)", args.out, len(text.encode()) / 2**20)
    return 0
