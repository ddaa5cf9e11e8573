"""`bench latency`: the decoding latency sweep (bench.analysis.latency) -> CSV, Markdown, figure, printed checks."""

from __future__ import annotations

import argparse
import logging

from bench.errors import ConfigError
from bench.utils.argtypes import layers, non_negative_float

log = logging.getLogger(__name__)


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got '{text}'") from exc


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bench.analysis.latency import LatencyConfig

    d = LatencyConfig()
    p.add_argument("--base", default=d.base, help="base LM spec (random:gpt2-large works)")
    p.add_argument("--reward", default=d.reward, help="reward trunk backbone spec")
    p.add_argument(
        "--reward-layers", type=layers, default=d.reward_layers, help="keep the first N trunk layers ('all': every one)"
    )
    p.add_argument("--methods", default=",".join(d.methods))
    p.add_argument("--top-k", type=_ints, default=d.top_k)
    p.add_argument("--batch-sizes", type=_ints, default=d.batch_sizes)
    p.add_argument("--new-tokens", type=_ints, default=d.new_tokens)
    p.add_argument("--prompt-len", type=int, default=d.prompt_len)
    p.add_argument("--loop-max-k", type=int, default=d.loop_max_k, help="run rad-loop only for k up to this")
    p.add_argument("--mlp-rank", type=int, default=d.mlp_rank)
    p.add_argument("--beta", type=non_negative_float, default=d.beta)
    p.add_argument("--dtype", default=d.dtype)
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--min-run-time", type=float, default=d.min_run_time, help="seconds a measurement runs at least")
    p.add_argument(
        "--max-run-time",
        type=float,
        default=d.max_run_time,
        help="seconds a measurement runs at most (stretched to fit --min-samples decodes)",
    )
    p.add_argument("--min-samples", type=int, default=d.min_samples)
    p.add_argument("--spread-max", type=float, default=d.spread_max, help="unstable above this IQR/median")
    p.add_argument(
        "--drift-max",
        type=float,
        default=d.drift_max,
        help="unstable when plain before/after a cell differ by more than this fraction",
    )
    p.add_argument(
        "--load-max",
        type=float,
        default=d.load_max,
        help="unstable when other processes took more than this share of the CPUs",
    )
    p.add_argument("--retries", type=int, default=d.retries, help="re-measurements of an unstable cell")
    p.add_argument(
        "--reward-model",
        action="append",
        default=[],
        metavar="METHOD=DIR",
        help="a trained reward-model folder for METHOD (else untrained; latency ignores weights)",
    )
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", default=None)
    p.add_argument("--figure", default=None)


def parse_reward_models(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--reward-model '{item}': expected METHOD=DIR")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from bench.analysis.latency import LatencyConfig, ratio_report, run_sweep
    from bench.reporting.latency import plot, write_csv, write_markdown

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = LatencyConfig(
        base=args.base,
        reward=args.reward,
        reward_layers=args.reward_layers,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        top_k=args.top_k,
        batch_sizes=args.batch_sizes,
        new_tokens=args.new_tokens,
        prompt_len=args.prompt_len,
        beta=args.beta,
        mlp_rank=args.mlp_rank,
        loop_max_k=args.loop_max_k,
        dtype=args.dtype,
        device=args.device,
        seed=args.seed,
        reward_models=parse_reward_models(args.reward_model),
        min_run_time=args.min_run_time,
        max_run_time=args.max_run_time,
        min_samples=args.min_samples,
        spread_max=args.spread_max,
        drift_max=args.drift_max,
        load_max=args.load_max,
        retries=args.retries,
    )
    rows = run_sweep(cfg)
    lines = ratio_report(rows)
    write_csv(rows, args.out_csv)
    if args.out_md:
        write_markdown(rows, lines, args.out_md)
    if args.figure:
        plot(rows, args.figure)
    for line in lines:
        print(line)
    log.info("latency: %d cells -> %s", len(rows), args.out_csv)
    return 0
