"""The `bench` command line: one subcommand per pipeline step.

Each subcommand lives in its own module under `bench.commands` exposing
`add_arguments(parser)` and `run(args) -> int`; modules are imported lazily so that
`bench --help` stays fast and one broken optional dependency does not take down every command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bench.errors import BenchError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("bench.commands.convert", "convert an embedded GGUF model into a safetensors cache folder"),
    "prepare": ("bench.commands.prepare", "build train/held-out splits and prompt files from a data source"),
    "fit-sentiment": ("bench.commands.fit_sentiment", "fit the offline TF-IDF sentiment classifier on SST-2"),
    "train": ("bench.commands.train", "train a reward model of one parametrization"),
    "generate": ("bench.commands.generate", "plain or reward-guided decoding to a JSONL of continuations"),
    "score": ("bench.commands.score", "score continuations (toxicity, sentiment, fluency, diversity)"),
    "agreement": (
        "bench.commands.agreement",
        "validation of the judges: AUC / Spearman vs Perspective and human labels",
    ),
    "calibrate": ("bench.commands.calibrate", "fit the judges' monotone maps to Perspective's scale (cross-validated)"),
    "judges": (
        "bench.commands.judges",
        "the judges on a run's generations: calibrated scores, agreement under steering",
    ),
    "tables": ("bench.commands.tables", "collect per-run summaries into CSV / Markdown / LaTeX tables"),
    "figures": ("bench.commands.figures", "trade-off figures (toxicity / positive rate vs. fluency)"),
    "compare": ("bench.commands.compare", "check a run's tables against reference tables within their CIs"),
    "conclusions": (
        "bench.commands.conclusions",
        "which paired verdicts (vs plain, vs RAD) two tables folders of the same study share",
    ),
    "report": ("bench.commands.report", "self-contained HTML report: interactive trade-offs, sampled continuations"),
    "export": ("bench.commands.export", "a run's generations and per-continuation scores as a Parquet data set"),
    "latency": ("bench.commands.latency", "fixed-protocol decoding latency benchmark"),
    "rank": ("bench.commands.rank", "SVD rank analysis of reward matrices"),
    "diagnose": (
        "bench.commands.diagnose",
        "candidate-reward spread per decoding step vs the judge (why steering backfires)",
    ),
    "rank-sweep": (
        "bench.commands.rank_sweep",
        "rank sweep: steering at matched fluency vs the ARM's rank (table, figures)",
    ),
    "check-config": ("bench.commands.check_config", "validate config files (YAML syntax, keys, types) before a run"),
    "hub-ids": ("bench.commands.hub_ids", "list (or fetch) the hub ids a config needs, to run offline on a cluster"),
    "environment": (
        "bench.commands.environment",
        "record the software versions of a run, or write the environment lock",
    ),
    "cost": ("bench.commands.cost", "per stage wall time, peak memory and share of the requested resources used"),
    "plan": ("bench.commands.plan", "before a run: jobs and work per stage, and hours at given throughputs"),
}


def _chosen_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (first argument that is not an option), if any."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: list[str] | None = None, *, every_command: bool = False) -> argparse.ArgumentParser:
    """Only the chosen command's module is imported (a heavy one pulls in torch: ~3 s per call otherwise);
    `every_command` builds all subcommands' arguments (for introspection)."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen_command(sys.argv[1:] if argv is None else argv)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        if name != chosen and not every_command:
            continue
        mod = importlib.import_module(module)
        mod.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    from bench.utils.logs import setup_logging
    from bench.utils.progress import quiet_library_bars

    quiet_library_bars()  # before build_parser imports the command's libraries
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    mod = importlib.import_module(args._module)
    try:
        return int(mod.run(args) or 0)
    except BenchError as exc:
        logging.getLogger("bench").error("%s", exc)
        return 2
    except OSError as exc:  # file-system trouble the command did not anticipate: name the file, no traceback
        where = exc.filename or "?"
        logging.getLogger("bench").error("%s: %s", where, exc.strerror or exc)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("bench").error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
