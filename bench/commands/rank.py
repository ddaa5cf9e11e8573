"""`bench rank`: SVD rank analysis of trained reward models' matrices R[prefix, token] -> tables and figures.

Per task the prefixes (from every --prefixes file of the task) and the C token columns are chosen once and
shared by all of the task's reward models, so their ranks are comparable.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from bench.errors import ConfigError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bench.analysis.rank import COLUMN_KINDS

    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="TASK:METHOD=DIR",
        help="a trained reward-model folder (repeat for every task and parametrization)",
    )
    p.add_argument(
        "--prefixes",
        action="append",
        required=True,
        metavar="TASK=FILE",
        help="JSONL of generations ({prompt, continuations}), prompts ({prompt}) or texts ({text}) to "
        "take prefixes from; repeat (also per task) to pool several files",
    )
    p.add_argument("--n-prefixes", type=int, default=256, help="largest N (rows)")
    p.add_argument(
        "--sizes",
        default=None,
        help="comma-separated N values for rank vs N (default: 64, 128, ... below --n-prefixes, and it)",
    )
    p.add_argument("--cuts", type=int, default=3, help="prefixes per continuation or text (cut after 1/c, 2/c, ...)")
    p.add_argument(
        "--columns",
        choices=COLUMN_KINDS,
        default="mixed",
        help="token columns shared by all prefixes: most frequent tokens of the prefix files, a seeded "
        "vocabulary sample, half of each, or the whole vocabulary",
    )
    p.add_argument("--n-columns", type=int, default=512, help="C (ignored for --columns vocab)")
    p.add_argument("--max-length", type=int, default=64, help="BOS + the last max_length - 1 tokens of a prefix")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--chunk-size", type=int, default=256, help="RAD: candidates per forward over the cached prefix")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-csv", required=True, help="rank table at the largest N (also --out-md)")
    p.add_argument("--out-md", default=None)
    p.add_argument("--out-vs-n-csv", default=None, help="effective rank against N (also --out-vs-n-md)")
    p.add_argument("--out-vs-n-md", default=None)
    p.add_argument("--out-spectrum", default=None, help="CSV of every singular value")
    p.add_argument("--fig-spectrum", default=None)
    p.add_argument("--fig-growth", default=None, help="figure: effective rank vs N, y = x, cap and ARM bounds")


def _pairs(items: list[str], flag: str, sep: str = "=") -> list[tuple[str, str]]:
    out = []
    for item in items:
        if sep not in item:
            raise ConfigError(f"{flag} '{item}': expected KEY{sep}VALUE")
        k, v = item.split(sep, 1)
        out.append((k.strip(), v.strip()))
    return out


def _sizes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        sizes = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise ConfigError(f"--sizes '{text}': expected comma-separated integers") from None
    if not sizes or sizes[0] < 2:
        raise ConfigError(f"--sizes '{text}': expected integers >= 2")
    return sizes


def run(args: argparse.Namespace) -> int:
    from bench.analysis.rank import (
        choose_columns,
        encode_prefixes,
        growth_sizes,
        prefixes_from_records,
        rank_vs_n,
        reward_matrix,
        source_texts,
        spectrum,
        summarise,
        token_counts,
    )
    from bench.reporting import rank as report
    from bench.rewards.registry import load_reward_model
    from bench.utils.io import read_jsonl

    if args.n_prefixes < 2 or args.n_columns < 2 or args.cuts < 1 or args.max_length < 2:
        raise ConfigError("--n-prefixes, --n-columns and --max-length must be >= 2 and --cuts >= 1")
    models = []
    for key, folder in _pairs(args.model, "--model"):
        if ":" not in key:
            raise ConfigError(f"--model '{key}={folder}': expected TASK:METHOD=DIR")
        task, method = key.split(":", 1)
        models.append((task, method, folder))
    prefix_files: dict[str, list[str]] = {}
    for task, path in _pairs(args.prefixes, "--prefixes"):
        prefix_files.setdefault(task, []).append(path)
    missing = sorted({t for t, _, _ in models} - set(prefix_files))
    if missing:
        raise ConfigError(f"--prefixes: no prefix file for task(s) {missing}")
    requested = _sizes(args.sizes)

    rows: list[dict] = []
    growth: list[dict] = []
    spectra: dict[tuple[str, str], Any] = {}
    spec_rows: list[dict] = []
    inputs: dict[str, tuple] = {}  # task -> (encoded prefixes, token columns): shared by the task's models
    for task, method, folder in models:
        model = load_reward_model(folder, device=args.device)
        tok = model.tokenizer
        if task not in inputs:
            records = [rec for path in prefix_files[task] for rec in read_jsonl(path)]
            source = ", ".join(prefix_files[task])
            prefixes = prefixes_from_records(records, args.n_prefixes, args.cuts, args.seed, source=source)
            counts = token_counts(tok, source_texts(records)) if args.columns in ("mixed", "frequent") else None
            columns = choose_columns(args.columns, args.n_columns, model.vocab_size, counts, seed=args.seed)
            inputs[task] = (encode_prefixes(tok, prefixes, args.max_length), columns)
        encoded, columns = inputs[task]
        if int(columns.max()) >= model.vocab_size:
            raise ConfigError(
                f"--model {task}:{method}: its vocabulary ({model.vocab_size}) differs from the task's "
                "other reward models'"
            )
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        log.info("rank: %s/%s: R over %d prefixes x %d columns", task, method, len(encoded), columns.numel())
        R = reward_matrix(
            model,
            encoded,
            None if args.columns == "vocab" else columns,
            args.batch_size,
            args.chunk_size,
            pad,
            progress=True,
        )
        n = R.shape[0]
        extra = {
            "task": task,
            "method": method or model.config.parametrization,
            "columns": args.columns,
            "bound": model.rank_bound(),
            "hidden_size": model.hidden_size,
        }
        for centered in (False, True):
            rows.append({**summarise(R, centered), **extra})
        sizes = [s for s in requested if s <= n] if requested else growth_sizes(n)
        growth += [{**r, **extra} for r in rank_vs_n(R, sizes)]
        spectra[(task, extra["method"])] = {c: spectrum(R, c) for c in (False, True)}
        for c, sp in spectra[(task, extra["method"])].items():
            spec_rows += [
                {
                    "task": task,
                    "method": extra["method"],
                    "centered": c,
                    "i": i + 1,
                    "sigma": float(s),
                    "sigma_rel": float(s_rel),
                }
                for i, (s, s_rel) in enumerate(zip(sp.sigma, sp.normalised))
            ]
        del model, R

    report.write_rank_csv(rows, args.out_csv)
    if args.out_md:
        report.write_text(report.rank_markdown(rows), args.out_md)
    if args.out_vs_n_csv:
        report.write_csv(growth, report.VS_N_COLUMNS, args.out_vs_n_csv)
    if args.out_vs_n_md:
        report.write_text(report.rank_vs_n_markdown(growth), args.out_vs_n_md)
    if args.out_spectrum:
        report.write_csv(spec_rows, ["task", "method", "centered", "i", "sigma", "sigma_rel"], args.out_spectrum)
    if args.fig_spectrum:
        report.plot_spectra(spectra, args.fig_spectrum)
    if args.fig_growth:
        report.plot_rank_vs_n(growth, args.fig_growth)
    for r in rows:
        print(
            f"{r['task']:10s} {r['method']:12s} centered={str(r['centered']):5s} N={r['n_prefixes']} "
            f"C={r['n_columns']} rank(1e-2)={r['rank_1e-2']} rank(1e-3)={r['rank_1e-3']} "
            f"entropy={r['entropy_rank']:.1f} numerical={r['numerical_rank']} cap={r['cap']} bound={r['bound']}"
        )
    return 0
