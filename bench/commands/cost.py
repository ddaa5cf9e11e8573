"""`bench cost`: per stage, the wall time, peak memory and share of the requested memory / runtime a run used.

    bench cost --benchmarks runs/default/benchmarks --request train=4000,60 --request generate=3000,30 \
        --out-csv results/tables/cost.csv --out-md results/tables/cost.md

Reads Snakemake's `benchmark:` records (every rule writes one per job); the Snakefile's rule `cost` passes each
rule's request as Snakemake resolved it (the config's `resources:`). Jobs over 80 % of either are flagged.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmarks", required=True, help="the run's benchmarks folder (work_dir/benchmarks)")
    parser.add_argument(
        "--request",
        action="append",
        default=[],
        metavar="RULE=MEM_MB,RUNTIME_MIN",
        help="what a rule's jobs asked for (repeatable); stages without one show n/a",
    )
    parser.add_argument(
        "--threshold", type=float, default=None, help="flag a job above this share of its request (default 0.8)"
    )
    parser.add_argument("--out-csv", required=True)
    parser.add_argument("--out-md", required=True)


def run(args: argparse.Namespace) -> int:
    import logging
    import math

    from bench.errors import ConfigError
    from bench.reporting import cost
    from bench.utils.io import atomic_outputs, check_writable

    threshold = cost.THRESHOLD if args.threshold is None else args.threshold
    if not (math.isfinite(threshold) and 0 < threshold <= 1):
        raise ConfigError(f"--threshold {args.threshold}: expected a share in (0, 1]")
    check_writable(args.out_csv, args.out_md)
    requests = {}
    for text in args.request:
        rule, mem, runtime = cost.parse_request(text)
        requests[rule] = (mem, runtime)
    records = cost.read_records(args.benchmarks)
    rows = cost.cost_rows(records, requests, threshold)
    with atomic_outputs(args.out_csv, args.out_md) as (csv_tmp, md_tmp):
        csv_tmp.write_text(cost.to_csv(rows), encoding="utf-8")
        md_tmp.write_text(cost.to_markdown(rows, threshold), encoding="utf-8")
    over = sum(r["over"] or 0 for r in rows)
    logging.getLogger(__name__).info(
        "%d jobs in %d stages; %d over %.0f %% of their request -> %s",
        len(records),
        len(rows),
        over,
        100 * threshold,
        args.out_csv,
    )
    return 0
