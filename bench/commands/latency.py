"""`bench latency`: the fixed-protocol decoding latency sweep -> CSV, Markdown, figure, and printed ratios."""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import statistics
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.utils.argtypes import layers, non_negative_float
from bench.utils.io import atomic_open, atomic_path

log = logging.getLogger(__name__)

COLUMNS = ["method", "batch_size", "new_tokens", "top_k", "ms_per_token", "ms_q1", "ms_q3", "ms_min", "ms_max",
           "tokens_per_s", "lm_ms", "reward_ms", "reward_share", "trunk_forwards_per_token",
           "trunk_positions_per_token", "reward_calls_per_token", "peak_mem_mb", "peak_mem_kind", "plain_ms_paired",
           "ratio_to_plain", "limit_measured", "limit_flops", "ratio_over_limit", "device", "device_name", "dtype", "torch",
           "transformers", "threads", "warmup", "repeats", "sync", "base", "reward", "prompt_len"]
PROTOCOL_KEYS = ["device", "device_name", "dtype", "torch", "transformers", "threads", "warmup", "repeats", "sync",
                 "base", "reward", "prompt_len"]


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got '{text}'") from exc


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="embedded:smollm2-135m", help="base LM spec (random:gpt2-large works)")
    p.add_argument("--reward", default="embedded:smollm2-135m", help="reward trunk backbone spec")
    p.add_argument("--reward-layers", type=layers, default=6, help="keep the first N trunk layers ('all': every one)")
    p.add_argument("--methods", default="plain,rad,rad-loop,arm,arm-baseline,arm-mlp")
    p.add_argument("--top-k", type=_ints, default=[10, 20, 40, 80])
    p.add_argument("--batch-sizes", type=_ints, default=[1, 8, 32])
    p.add_argument("--new-tokens", type=_ints, default=[32])
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--loop-max-k", type=int, default=20, help="run rad-loop only for k up to this")
    p.add_argument("--mlp-rank", type=int, default=16)
    p.add_argument("--beta", type=non_negative_float, default=10.0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reward-model", action="append", default=[], metavar="METHOD=DIR",
                   help="a trained reward-model folder for METHOD (else untrained; latency ignores weights)")
    p.add_argument("--unpaired", action="store_true", help="do not re-time plain decoding alongside every cell")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", default=None)
    p.add_argument("--figure", default=None)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def write_csv(rows: list[dict], path: str | Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: _fmt(r[c]) if isinstance(r.get(c), float) else r.get(c, "") for c in COLUMNS})
    with atomic_open(path) as fh:
        fh.write(buf.getvalue())


def markdown(rows: list[dict], ratio_lines: list[str]) -> str:
    proto = {k: rows[0][k] for k in PROTOCOL_KEYS} if rows else {}
    out = ["# Decoding latency", "", "Protocol: " + "; ".join(f"{k}={v}" for k, v in proto.items()) + ".",
           "ms/token = median wall time of one decoding step (one token for every row), IQR in brackets; "
           "calls = reward-head evaluations per token (hook-counted); fwd = reward-trunk forwards per token; "
           "share = reward-model share of the step; x plain = median step / median of plain decoding timed "
           "alternately with the same cell; limit = 1 + reward time / paired plain LM step.", ""]
    cols = ["method", "B", "T", "k", "ms/token [IQR]", "tok/s", "calls", "fwd", "share", "peak MB", "x plain",
            "limit", "limit (FLOPs)"]
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "---|" * len(cols))
    for r in rows:
        out.append("| " + " | ".join([
            r["method"], str(r["batch_size"]), str(r["new_tokens"]), str(r["top_k"] or "-"),
            f"{r['ms_per_token']:.2f} [{r['ms_q1']:.2f}, {r['ms_q3']:.2f}]", f"{r['tokens_per_s']:.1f}",
            f"{r['reward_calls_per_token']:.2f}", f"{r['trunk_forwards_per_token']:.2f}", f"{r['reward_share']:.2f}",
            f"{r['peak_mem_mb']:.0f}", f"{r['ratio_to_plain']:.3f}", f"{r['limit_measured']:.3f}",
            f"{r['limit_flops']:.3f}"]) + " |")
    out += ["", "## Ratios", "", "```", *ratio_lines, "```", ""]
    return "\n".join(out)


def plot(rows: list[dict], path: str | Path) -> None:
    """ms/token vs k, one line per method, one panel per (batch, new tokens); plain as a dashed level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["batch_size"], r["new_tokens"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (b, t) in zip(axes[0], panels):
        sub = [r for r in rows if r["batch_size"] == b and r["new_tokens"] == t]
        for method in sorted({r["method"] for r in sub}):
            pts = sorted((r["top_k"], r["ms_per_token"]) for r in sub if r["method"] == method)
            if method == "plain":
                paired = [r["plain_ms_paired"] for r in sub if not math.isnan(r.get("plain_ms_paired", math.nan))]
                level = statistics.median(paired) if paired else pts[0][1]  # plain re-timed alongside each cell
                ax.axhline(level, color="k", ls="--", lw=1, label="plain" + (" (paired median)" if paired else ""))
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
        ax.set_xscale("log", base=2)
        ks = sorted({r["top_k"] for r in sub if r["method"] != "plain"})
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("k (candidates)")
        ax.set_ylabel("ms / token")
        ax.set_title(f"batch {b}, {t} new tokens", fontsize=9)
    axes[0][0].legend(fontsize=7)
    if rows:
        fig.suptitle(f"{rows[0]['device_name']} ({rows[0]['device']}, {rows[0]['dtype']}), "
                     f"median of {rows[0]['repeats']}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


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

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = LatencyConfig(
        base=args.base, reward=args.reward, reward_layers=args.reward_layers,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()], top_k=args.top_k,
        batch_sizes=args.batch_sizes, new_tokens=args.new_tokens, prompt_len=args.prompt_len, warmup=args.warmup,
        repeats=args.repeats, beta=args.beta, mlp_rank=args.mlp_rank, loop_max_k=args.loop_max_k, dtype=args.dtype,
        device=args.device, seed=args.seed, paired=not args.unpaired, reward_models=parse_reward_models(args.reward_model))
    rows = run_sweep(cfg)
    lines = ratio_report(rows)
    write_csv(rows, args.out_csv)
    if args.out_md:
        with atomic_open(args.out_md) as fh:
            fh.write(markdown(rows, lines))
    if args.figure:
        plot(rows, args.figure)
    for line in lines:
        print(line)
    log.info("latency: %d cells -> %s", len(rows), args.out_csv)
    return 0
