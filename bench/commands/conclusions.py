"""`bench conclusions A B`: which paired verdicts (vs plain, vs RAD at matched fluency) two tables folders of
the same study share, e.g. the study's tables and its re-scoring under another judge
(scripts/rescore_judge.sh, docs/judges.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import BenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, help="a tables folder (e.g. results/study/tables)")
    parser.add_argument("b", type=Path, help="another tables folder of the same settings")
    parser.add_argument("--out", type=Path, help="write every verdict of both, side by side, as CSV here")


def run(args: argparse.Namespace) -> int:
    from bench.reporting.conclusions import compare_conclusions, summary_lines
    from bench.utils.io import atomic_open

    for d in (args.a, args.b):
        if not d.is_dir():
            raise BenchError(f"{d}: not a tables folder")
    df = compare_conclusions(args.a, args.b)
    for line in summary_lines(df, str(args.a), str(args.b)):
        print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(args.out) as fh:
            df.to_csv(fh, index=False)
    return 0
