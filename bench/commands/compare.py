"""`bench compare`: check a run's tables against a reference (default: the committed tables) within CIs."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_TABLES = ("toxicity", "sentiment")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run's tables folder (e.g. results/tables) or one table CSV")
    parser.add_argument(
        "reference",
        nargs="?",
        default=None,
        help="reference folder or CSV (default: the same files as committed at --rev)",
    )
    parser.add_argument("--rev", default="HEAD", help="git revision of the default reference (default: HEAD)")
    parser.add_argument(
        "--tables",
        default=",".join(DEFAULT_TABLES),
        help="table names to compare when given folders (default: toxicity,sentiment)",
    )
    parser.add_argument("--keys", default=None, help="comma-separated key columns (default: the known setting columns)")
    parser.add_argument("--out", default=None, help="also write the differences as CSV here")


def _pairs(args) -> list[tuple[Path, Path | None]]:
    run = Path(args.run)
    if run.is_file():
        return [(run, Path(args.reference) if args.reference else None)]
    names = [n.strip() for n in args.tables.split(",") if n.strip()]
    ref = Path(args.reference) if args.reference else None
    return [(run / f"{n}.csv", ref / f"{n}.csv" if ref else None) for n in names]


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from bench.errors import ConfigError
    from bench.reporting.compare import compare_tables, failed, read_table, read_table_at_revision
    from bench.utils.io import atomic_open

    keys = [k.strip() for k in args.keys.split(",")] if args.keys else None
    reports = []
    for run_path, ref_path in _pairs(args):
        if not run_path.exists():
            raise ConfigError(f"{run_path}: run table not found; expected a CSV written by `bench tables`")
        ref = read_table(ref_path) if ref_path else read_table_at_revision(run_path, args.rev)
        report = compare_tables(ref, read_table(run_path), keys)
        counts = report["verdict"].value_counts().to_dict()
        n_values = len(ref.frame)
        print(
            f"{run_path} vs {ref.where}: {n_values} reference rows; "
            + (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "every value identical")
        )
        reports.append(report)
    report = pd.concat(reports, ignore_index=True) if reports else pd.DataFrame()
    shown = report[report["verdict"] != "identical"] if len(report) else report
    if len(shown):
        with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_columns", 20):
            print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        with atomic_open(args.out) as fh:
            report.to_csv(fh, index=False)
    bad = failed(report) if len(report) else False
    print(
        "FAIL: values outside the reference's 95% CI or rows on one side only"
        if bad
        else "OK: every value identical or within the reference's 95% CI"
    )
    return 1 if bad else 0
