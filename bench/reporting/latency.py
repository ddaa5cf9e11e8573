"""Writers of the latency sweep (`bench.analysis.latency` rows): CSV, Markdown with the checks, figure."""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path

from bench.reporting.format import fmt
from bench.utils.io import atomic_open, atomic_path

COLUMNS = [
    "method",
    "batch_size",
    "new_tokens",
    "top_k",
    "ms_per_token",
    "ms_q1",
    "ms_q3",
    "ms_min",
    "ms_max",
    "samples",
    "tokens_per_s",
    "processor_ms",
    "reward_ms",
    "reward_share",
    "trunk_forwards_per_token",
    "trunk_positions_per_token",
    "reward_calls_per_token",
    "peak_mem_mb",
    "peak_mem_kind",
    "plain_ms_paired",
    "plain_drift",
    "ratio_to_plain",
    "limit_measured",
    "limit_flops",
    "ratio_over_limit",
    "spread",
    "stable",
    "unstable_reasons",
    "attempts",
    "others_cpu",
    "load1",
    "cpus",
    "device",
    "device_name",
    "dtype",
    "torch",
    "transformers",
    "threads",
    "timer",
    "sync",
    "decode",
    "base",
    "reward",
    "prompt_len",
]
PROTOCOL_KEYS = [
    "device",
    "device_name",
    "dtype",
    "torch",
    "transformers",
    "threads",
    "timer",
    "sync",
    "decode",
    "base",
    "reward",
    "prompt_len",
]


def write_csv(rows: list[dict], path: str | Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: fmt(r.get(c, "")) for c in COLUMNS})
    with atomic_open(path) as fh:
        fh.write(buf.getvalue())


def markdown(rows: list[dict], ratio_lines: list[str]) -> str:
    proto = {k: rows[0][k] for k in PROTOCOL_KEYS} if rows else {}
    out = [
        "# Decoding latency",
        "",
        "Protocol: " + "; ".join(f"{k}={v}" for k, v in proto.items()) + ".",
        "ms/token = median wall time of one decoding step (one token for every row), IQR in brackets, n = Timer "
        "samples; calls = reward-head evaluations per token (counted by the reward model); fwd = reward-trunk "
        "forwards per token; share = reward-step share of the step; x plain = median step / median of plain "
        "decoding measured just before and after the cell; limit = 1 + reward-step time / that plain step; "
        "others = CPU share other processes took meanwhile; a cell marked * is unstable (reasons in the CSV) and "
        "its checks print UNSTABLE.",
        "",
    ]
    cols = [
        "method",
        "B",
        "T",
        "k",
        "ms/token [IQR]",
        "n",
        "tok/s",
        "calls",
        "fwd",
        "share",
        "peak MB",
        "x plain",
        "limit",
        "limit (FLOPs)",
        "others",
        "stable",
    ]
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "---|" * len(cols))
    for r in rows:
        out.append(
            "| "
            + " | ".join(
                [
                    r["method"],
                    str(r["batch_size"]),
                    str(r["new_tokens"]),
                    str(r["top_k"] or "-"),
                    f"{fmt(r['ms_per_token'], '.2f')} [{fmt(r['ms_q1'], '.2f')}, {fmt(r['ms_q3'], '.2f')}]",
                    str(r["samples"]),
                    fmt(r["tokens_per_s"], ".1f"),
                    fmt(r["reward_calls_per_token"], ".2f"),
                    fmt(r["trunk_forwards_per_token"], ".2f"),
                    fmt(r["reward_share"], ".2f"),
                    fmt(r["peak_mem_mb"], ".0f"),
                    fmt(r["ratio_to_plain"], ".3f"),
                    fmt(r["limit_measured"], ".3f"),
                    fmt(r["limit_flops"], ".3f"),
                    fmt(r["others_cpu"], ".0%"),
                    "yes" if r["stable"] else "*",
                ]
            )
            + " |"
        )
    out += ["", "## Checks", "", "```", *ratio_lines, "```", ""]
    return "\n".join(out)


def write_markdown(rows: list[dict], ratio_lines: list[str], path: str | Path) -> None:
    with atomic_open(path) as fh:
        fh.write(markdown(rows, ratio_lines))


def plot(rows: list[dict], path: str | Path) -> None:
    """ms/token vs k, one line per method, one panel per (batch, new tokens); plain as a dashed level; unstable
    cells as hollow markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["batch_size"], r["new_tokens"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (b, t) in zip(axes[0], panels):
        sub = [r for r in rows if r["batch_size"] == b and r["new_tokens"] == t]
        paired = [r["plain_ms_paired"] for r in sub if r["method"] != "plain"]
        plain = [r["ms_per_token"] for r in sub if r["method"] == "plain"]
        level = statistics.median(paired or plain) if (paired or plain) else math.nan
        ax.axhline(level, color="k", ls="--", lw=1, label="plain (median of brackets)")
        for method in sorted({r["method"] for r in sub} - {"plain"}):
            pts = sorted((r["top_k"], r["ms_per_token"], r["stable"]) for r in sub if r["method"] == method)
            (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
            bad = [p for p in pts if not p[2]]
            if bad:
                ax.plot(
                    [p[0] for p in bad],
                    [p[1] for p in bad],
                    ls="none",
                    marker="o",
                    ms=9,
                    mfc="none",
                    color=line.get_color(),
                )
        ks = sorted({r["top_k"] for r in sub if r["method"] != "plain"})
        if ks:
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("k (candidates)")
        ax.set_ylabel("ms / token")
        ax.set_title(f"batch {b}, {t} new tokens", fontsize=9)
    axes[0][0].legend(fontsize=7)
    if rows:
        n_bad = sum(not r["stable"] for r in rows)
        fig.suptitle(
            f"{rows[0]['device_name']} ({rows[0]['device']}, {rows[0]['dtype']}); hollow: unstable "
            f"({n_bad}/{len(rows)} cells)",
            fontsize=9,
        )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
