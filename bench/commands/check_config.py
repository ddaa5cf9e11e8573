"""`bench check-config`: read, merge and validate config files the way the Snakefile does, before a run.

    bench check-config config/study.yaml                       # ok, or one line naming the file/line/key
    bench check-config config/paper.yaml config/rehearsal.yaml # merged in order, like snakemake --configfile A B

Snakemake parses a `--configfile` itself before the workflow's code runs, and its message for a YAML syntax
error names neither the file nor the line; this names both (exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("configfile", nargs="+", type=Path, help="config file(s), merged in order")


def run(args: argparse.Namespace) -> int:
    from bench.config import check_sources, load_config

    cfg = load_config(*args.configfile)
    check_sources(cfg, " + ".join(map(str, args.configfile)))
    tasks = [name for name, t in cfg["tasks"].items() if t.get("enabled", True)]
    print(
        f"{' + '.join(map(str, args.configfile))}: ok (run '{cfg['name']}', tasks: {', '.join(tasks) or 'none'}, "
        f"parametrizations: {', '.join(cfg['training']['parametrizations'])}, work_dir: {cfg['work_dir']})"
    )
    return 0
