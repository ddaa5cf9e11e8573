"""`bench figures`: trade-off plots from score summaries, the matched-fluency plot and the reward models'
held-out training curves.

The matched-fluency plot reads the tables stage's `matched_fluency.csv` (`--matched-fluency`), so the pipeline
bootstraps once; with `--scores` instead it computes the table itself (same numbers, same cost)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.tables import add_run_inputs
from bench.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_inputs(parser)
    parser.add_argument(
        "--matched-fluency",
        help="matched_fluency.csv written by `bench tables` (instead of recomputing its bootstraps from --scores)",
    )
    parser.add_argument("--out-dir", required=True, help="folder for the PNGs")


def run(args: argparse.Namespace) -> int:
    from bench.commands.tables import parse_levels
    from bench.reporting import figures as F
    from bench.reporting import tables as T

    if not args.summaries and not args.reward_models:
        raise ConfigError("bench figures: give --summaries and/or --reward-models")
    if args.scores and not args.summaries:
        raise ConfigError("--scores needs --summaries (one scores file per summary)")
    if args.matched_fluency and not args.summaries:
        raise ConfigError("--matched-fluency needs --summaries (the trade-off figures come with it)")
    written = []
    if args.summaries:
        df = T.load_summaries(args.summaries)
        written += F.write_figures(df, args.out_dir)
        if args.matched_fluency:
            written.append(
                F.matched_fluency_figure(
                    F.read_matched_fluency(args.matched_fluency), Path(args.out_dir) / "matched_fluency.png"
                )
            )
        elif args.scores:
            mf = T.matched_fluency_table(
                T.attach_scores(df, args.summaries, args.scores), parse_levels(args.ppl_levels), args.n_boot, args.seed
            )
            written.append(F.matched_fluency_figure(mf, Path(args.out_dir) / "matched_fluency.png"))
    if args.reward_models:
        T.load_reward_models(args.reward_models)  # clear errors for a missing / malformed summary
        written.append(F.reward_models_figure(args.reward_models, Path(args.out_dir) / "reward_models_heldout.png"))
    for path in written:
        print(path)
    return 0
