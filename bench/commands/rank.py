"""`bench rank`: SVD rank analysis of trained reward models' matrices R[prefix, token] -> tables and figures."""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.utils.io import atomic_open, atomic_path

log = logging.getLogger(__name__)

BASE_COLUMNS = ["task", "method", "columns", "centered", "n_prefixes", "n_columns", "rank_1e-2", "rank_1e-3",
                "entropy_rank", "numerical_rank", "bound", "hidden_size"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", required=True, metavar="TASK:METHOD=DIR",
                   help="a trained reward-model folder (repeat for every task and parametrization)")
    p.add_argument("--prefixes", action="append", required=True, metavar="TASK=FILE",
                   help="JSONL of generations ({prompt, continuations}) or prompts/texts to take prefixes from")
    p.add_argument("--n-prefixes", type=int, default=256)
    p.add_argument("--cuts", type=int, default=3, help="prefixes per continuation (cut after 1/c, 2/c, ... of it)")
    p.add_argument("--columns", choices=["vocab", "topk"], default="vocab")
    p.add_argument("--top-k", type=int, default=50, help="--columns topk: base LM's top-K tokens per prefix (union)")
    p.add_argument("--base", default=None, help="base LM spec (needed for --columns topk)")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--chunk-size", type=int, default=1024)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", default=None)
    p.add_argument("--out-spectrum", default=None, help="CSV of every normalised singular value")
    p.add_argument("--fig-spectrum", default=None)
    p.add_argument("--fig-growth", default=None)


def _pairs(items: list[str], flag: str, sep: str = "=") -> list[tuple[str, str]]:
    out = []
    for item in items:
        if sep not in item:
            raise ConfigError(f"{flag} '{item}': expected KEY{sep}VALUE")
        k, v = item.split(sep, 1)
        out.append((k.strip(), v.strip()))
    return out


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return v


def write_csv(rows: list[dict], path: str | Path) -> None:
    cols = BASE_COLUMNS + sorted({k for r in rows for k in r if k.startswith("relerr_r")},
                                 key=lambda c: int(c[len("relerr_r"):]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: _fmt(r.get(c, "")) for c in cols})
    with atomic_open(path) as fh:
        fh.write(buf.getvalue())


def markdown(rows: list[dict]) -> str:
    full = [r for r in rows if r.get("is_full")]
    rel = [c for c in ("relerr_r1", "relerr_r2", "relerr_r4", "relerr_r8", "relerr_r16", "relerr_r32", "relerr_r64")
           if any(c in r for r in full)]
    cols = ["task", "method", "centered", "N", "C", "rank>1e-2", "rank>1e-3", "entropy rank", "num. rank", "bound"]
    cols += [c.replace("relerr_r", "err r=") for c in rel]
    out = ["# Rank of reward matrices", "",
           "R[prefix, token] of the steering attribute; effective rank = #{sigma_i/sigma_1 > tau}; entropy rank = "
           "exp(H(sigma/sum sigma)); err r = relative Frobenius error of the best rank-r approximation; bound = "
           "ARM's construction bound (embedding size + 1 with a baseline) on R as is; num. rank counts "
           "sigma_i/sigma_1 > 1e-6 (float32 round-off), which on row-centred matrices of tiny variation can count "
           "noise.", "",
           "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in full:
        vals = [r["task"], r["method"], "yes" if r["centered"] else "no", r["n_prefixes"], r["n_columns"],
                r["rank_1e-2"], r["rank_1e-3"], f"{r['entropy_rank']:.1f}", r["numerical_rank"], r["bound"] or "-"]
        vals += [f"{r[c]:.3g}" if not math.isnan(r.get(c, math.nan)) else "-" for c in rel]
        out.append("| " + " | ".join(str(v) for v in vals) + " |")
    out += ["", "## Effective rank (sigma_i/sigma_1 > 1e-3) vs. number of prefixes (raw R)", ""]
    keys = sorted({(r["task"], r["method"]) for r in rows})
    sizes = sorted({r["n_prefixes"] for r in rows})
    out.append("| task | method | " + " | ".join(f"N={n}" for n in sizes) + " |")
    out.append("|" + "---|" * (2 + len(sizes)))
    for task, method in keys:
        by_n = {r["n_prefixes"]: r["rank_1e-3"] for r in rows
                if r["task"] == task and r["method"] == method and not r["centered"]}
        out.append(f"| {task} | {method} | " + " | ".join(str(by_n.get(n, "")) for n in sizes) + " |")
    return "\n".join(out) + "\n"


def plot_spectrum(spectra: dict[tuple[str, str], Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, centered in zip(axes, (False, True)):
        for (task, method), sp in sorted(spectra.items()):
            s = sp[centered].normalised.numpy()
            s = s[s > 0]
            ax.plot(range(1, len(s) + 1), s, label=f"{task} / {method}")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlabel("index i")
        ax.set_title("rows centred" if centered else "R as is", fontsize=9)
    axes[0].set_ylabel("sigma_i / sigma_1")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_growth(rows: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for task, method in sorted({(r["task"], r["method"]) for r in rows}):
        pts = sorted((r["n_prefixes"], r["rank_1e-3"]) for r in rows
                     if r["task"] == task and r["method"] == method and not r["centered"])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{task} / {method}")
    ns = sorted({r["n_prefixes"] for r in rows})
    ax.plot(ns, ns, color="k", ls=":", lw=1, label="full rank (N)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of prefixes N")
    ax.set_ylabel("effective rank (sigma_i/sigma_1 > 1e-3)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from bench.analysis.rank import (encode_prefixes, growth_sizes, prefixes_from_records,
                                     reward_matrix, spectrum, summarise, topk_columns)
    from bench.models.loading import check_same_vocab, load_causal_lm, load_tokenizer
    from bench.rewards.registry import load_reward_model
    from bench.utils.io import read_jsonl

    models = []
    for key, folder in _pairs(args.model, "--model"):
        if ":" not in key:
            raise ConfigError(f"--model '{key}={folder}': expected TASK:METHOD=DIR")
        task, method = key.split(":", 1)
        models.append((task, method, folder))
    prefix_files = dict(_pairs(args.prefixes, "--prefixes"))
    missing = sorted({t for t, _, _ in models} - set(prefix_files))
    if missing:
        raise ConfigError(f"--prefixes: no prefix file for task(s) {missing}")
    if args.columns == "topk" and not args.base:
        raise ConfigError("--columns topk needs --base (the LM whose top-K tokens are the columns)")
    base_lm = base_tok = None
    if args.columns == "topk":
        base_lm = load_causal_lm(args.base, device=args.device)
        base_tok = load_tokenizer(args.base)

    rows: list[dict] = []
    spectra: dict[tuple[str, str], Any] = {}
    spec_rows: list[dict] = []
    for task, method, folder in models:
        prefixes = prefixes_from_records(read_jsonl(prefix_files[task]), args.n_prefixes, args.cuts, args.seed,
                                         source=prefix_files[task])
        model = load_reward_model(folder, device=args.device)
        tok = model.tokenizer
        encoded = encode_prefixes(tok, prefixes, args.max_length)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        columns = None
        if base_lm is not None:
            check_same_vocab(base_tok, tok)
            columns = topk_columns(base_lm, encoded, args.top_k, args.batch_size, pad)
        log.info("rank: %s/%s: R over %d prefixes x %s columns", task, method, len(encoded),
                 "all" if columns is None else columns.numel())
        R = reward_matrix(model, encoded, columns, args.batch_size, args.chunk_size, pad, progress=True)
        extra = {"task": task, "method": model.config.parametrization if method == "" else method,
                 "columns": args.columns if columns is None else f"top{args.top_k}-union",
                 "bound": model.rank_bound(), "hidden_size": model.hidden_size}
        for n in growth_sizes(R.shape[0]):
            for centered in (False, True):
                row = summarise(R[:n], centered)
                row.update(extra)
                row["is_full"] = n == R.shape[0]
                rows.append(row)
        spectra[(task, method)] = {c: spectrum(R, c) for c in (False, True)}
        for c, sp in spectra[(task, method)].items():
            spec_rows += [{"task": task, "method": method, "centered": c, "i": i + 1, "sigma": float(s),
                           "sigma_rel": float(s_rel)} for i, (s, s_rel) in enumerate(zip(sp.sigma, sp.normalised))]
        del model, R

    write_csv(rows, args.out_csv)
    if args.out_md:
        with atomic_open(args.out_md) as fh:
            fh.write(markdown(rows))
    if args.out_spectrum:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["task", "method", "centered", "i", "sigma", "sigma_rel"],
                           lineterminator="\n")
        w.writeheader()
        w.writerows({k: _fmt(v) for k, v in r.items()} for r in spec_rows)
        with atomic_open(args.out_spectrum) as fh:
            fh.write(buf.getvalue())
    if args.fig_spectrum:
        plot_spectrum(spectra, args.fig_spectrum)
    if args.fig_growth:
        plot_growth(rows, args.fig_growth)
    for r in rows:
        if r["is_full"]:
            print(f"{r['task']:10s} {r['method']:12s} centered={str(r['centered']):5s} N={r['n_prefixes']} "
                  f"rank(1e-2)={r['rank_1e-2']} rank(1e-3)={r['rank_1e-3']} entropy={r['entropy_rank']:.1f} "
                  f"numerical={r['numerical_rank']} bound={r['bound']}")
    return 0
