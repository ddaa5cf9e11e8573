"""`bench rank-sweep`: the rank sweep's table and one figure per task family (issue 30, docs/rank_sweep.md).

Reads the runs' summaries and per-continuation scores (as `bench tables`), the reward-model table
(`reward_models.csv`: held-out AUC) and the rank analysis (`rank.csv`: effective ranks), and writes
`<out-dir>/rank_sweep.{csv,md}` and `<fig-dir>/rank_sweep_<family>.png` together (all or none).
"""

from __future__ import annotations

import argparse

from bench.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summaries", nargs="+", required=True, help="summary CSVs from `bench score --out-summary`")
    parser.add_argument(
        "--scores", nargs="+", required=True, help="per-continuation score JSONLs, one per summary, same order"
    )
    parser.add_argument("--reward-table", default=None, help="reward_models.csv (held-out AUC per model)")
    parser.add_argument("--rank-table", default=None, help="rank.csv from `bench rank` (effective ranks)")
    parser.add_argument(
        "--ppl-levels", default="1.25,1.5,2", help="matched fluency: PPL levels as factors of plain decoding's PPL"
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of prompts")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--out-dir", required=True, help="folder for rank_sweep.{csv,md}")
    parser.add_argument("--fig-dir", required=True, help="folder for rank_sweep_<family>.png")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.commands.tables import parse_levels
    from bench.reporting import rank_sweep as RS
    from bench.reporting import tables as T
    from bench.utils.io import atomic_outputs, check_writable

    if args.n_boot < 0:
        raise ConfigError(f"--n-boot {args.n_boot}: expected a number of resamples >= 0")
    levels = parse_levels(args.ppl_levels)
    out_csv, out_md = Path(args.out_dir) / "rank_sweep.csv", Path(args.out_dir) / "rank_sweep.md"
    check_writable(out_csv, out_md, folders=[args.fig_dir])
    df = T.attach_scores(T.load_summaries(args.summaries), args.summaries, args.scores)
    rewards = RS.read_reward_table(args.reward_table) if args.reward_table else None
    ranks = RS.read_rank_table(args.rank_table) if args.rank_table else None
    table = RS.sweep_table(df, levels, args.n_boot, args.seed, rewards, ranks)
    families = list(dict.fromkeys(table["family"].astype(str)))
    figs = [Path(args.fig_dir) / RS.figure_name(f) for f in families]
    with atomic_outputs(out_csv, out_md, *figs) as tmp:
        RS.write_sweep_tables(table, tmp[0], tmp[1])
        RS.plot_sweep(table, dict(zip(families, tmp[2:])))
    for path in (out_csv, out_md, *figs):
        print(path)
    return 0
