"""`bench tables`: result tables from the runs' score summaries (+ per-continuation scores) and reward models.

- `--summaries` -> <family>.{csv,md,tex} (toxicity, sentiment); with `--scores` (one per summary, same order)
  each row gains paired-bootstrap differences to plain and to RAD and the `backfire` / `non_monotone` flags,
  and matched_fluency.{csv,md} and flags.{csv,md} (every flagged row, counted per table) are written.
- `--reward-models` (folders `<task>/<parametrization>/`) -> reward_models.{csv,md}.
"""

from __future__ import annotations

import argparse

from bench.errors import ConfigError


def add_run_inputs(parser: argparse.ArgumentParser) -> None:
    """The inputs `bench tables` and `bench figures` share: summaries, their scores, reward models, statistics."""
    parser.add_argument("--summaries", nargs="+", default=[], help="summary CSVs from `bench score --out-summary`")
    parser.add_argument(
        "--scores",
        nargs="+",
        default=[],
        help="per-continuation score JSONLs from `bench score --out-scores`, one per summary, same order",
    )
    parser.add_argument(
        "--reward-models", nargs="+", default=[], help="trained reward-model folders (<task>/<parametrization>/)"
    )
    parser.add_argument(
        "--ppl-levels", default="1.25,1.5,2", help="matched fluency: PPL levels as factors of plain decoding's PPL"
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of prompts")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_inputs(parser)
    parser.add_argument("--out-dir", required=True, help="folder for the tables")
    parser.add_argument("--formats", default="csv,md,tex", help="comma-separated subset of csv,md,tex")


def parse_levels(spec: str) -> list[float]:
    try:
        levels = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or not all(x > 0 for x in levels):
        raise ConfigError(f"--ppl-levels {spec!r}: expected comma-separated positive factors, e.g. 1.25,1.5,2")
    return levels


def run(args: argparse.Namespace) -> int:
    from bench.reporting import tables as T

    if not args.summaries and not args.reward_models:
        raise ConfigError("bench tables: give --summaries and/or --reward-models")
    if args.scores and not args.summaries:
        raise ConfigError("--scores needs --summaries (one scores file per summary)")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    levels = parse_levels(args.ppl_levels)
    written = []
    if args.summaries:
        df = T.load_summaries(args.summaries)
        if args.scores:
            df = T.add_flags(
                T.add_paired_columns(T.attach_scores(df, args.summaries, args.scores), args.n_boot, args.seed)
            )
            written += T.write_matched_fluency(
                T.matched_fluency_table(df, levels, args.n_boot, args.seed), args.out_dir, formats
            )
            df = df.drop(columns="scores_file")
            written += T.write_flags(df, args.out_dir, formats)
        written = T.write_tables(df, args.out_dir, formats) + written
    if args.reward_models:
        written += T.write_reward_models(T.load_reward_models(args.reward_models), args.out_dir, formats)
    for path in written:
        print(path)
    return 0
