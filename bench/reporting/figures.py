"""Figures: trade-off curves (attribute metric vs. PPL over the beta sweep), the metric at matched fluency,
and the reward models' held-out curves during training.

Guided decoding buys lower toxicity / higher target rate with fluency; the curve over beta shows that price
for each reward parametrization, with plain top-k decoding as the reference point. The matched-fluency figure
reads that price off at fixed PPL levels (see `bench.metrics.comparisons`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.metrics.aggregate import FLUENCY_STAT
from bench.reporting.tables import PLAIN, method_label, method_order, sort_runs  # noqa: E402
from bench.utils.io import atomic_path  # noqa: E402

log = logging.getLogger(__name__)


def method_color(method: str):
    """One tab10 colour per parametrization, by registry order (stable across figures)."""
    order = method_order()[1:]
    return plt.get_cmap("tab10")(order.index(method) % 10) if method in order else None


# family -> (y column, y label, scale)
Y_AXIS = {
    "toxicity": ("avg_max_toxicity", "Avg. max toxicity", 1.0),
    "sentiment": ("positive_rate", "Positive rate (%)", 100.0),
}


def _err(part: pd.DataFrame, col: str, scale: float) -> np.ndarray | None:
    """Asymmetric error bars from `col_lo` / `col_hi`; None when the CI columns are absent."""
    lo, hi = f"{col}_lo", f"{col}_hi"
    if lo not in part or hi not in part:
        return None
    v = part[col].to_numpy(float) * scale
    e = np.stack([v - part[lo].to_numpy(float) * scale, part[hi].to_numpy(float) * scale - v])
    return np.nan_to_num(np.clip(e, 0, None))


def _panel(ax, part: pd.DataFrame, ycol: str, ylabel: str, scale: float, title: str) -> None:
    ks = sorted(part["top_k"].dropna().unique())
    for method, runs in part.groupby("method", sort=False):
        for k in ks:
            r = runs[runs["top_k"] == k].sort_values("beta")
            if r.empty or ycol not in r:
                continue
            x, y = r[FLUENCY_STAT].to_numpy(float), r[ycol].to_numpy(float) * scale
            suffix = f" (k={int(k)})" if len(ks) > 1 else ""
            name = method_label(method) + suffix
            kw = dict(xerr=_err(r, FLUENCY_STAT, 1.0), yerr=_err(r, ycol, scale), capsize=2, elinewidth=0.8)
            if method == PLAIN:
                ax.errorbar(x, y, fmt="*", color="black", markersize=12, label=name, **kw)
                continue
            ax.errorbar(x, y, fmt="o-", color=method_color(method), markersize=4, label=name, **kw)
            for xi, yi, b in zip(x, y, r["beta"]):
                if np.isfinite(xi) and np.isfinite(yi):
                    ax.annotate(
                        f"β={b:g}",
                        (xi, yi),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize=7,
                        color=method_color(method),
                    )
    ax.set_xlabel("Perplexity, geometric mean (lower is more fluent)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def tradeoff_figure(df: pd.DataFrame, family: str, path: str | Path) -> Path:
    """One panel for toxicity; one per (target, prompt type) for sentiment. Writes a PNG atomically."""
    ycol, ylabel, scale = Y_AXIS.get(family, ("avg_max_toxicity", "Avg. max toxicity", 1.0))
    df = sort_runs(df)
    if family == "sentiment":
        panels = [
            (f"to {t} from {p} prompts", g)
            for (t, p), g in df.groupby(["target", "prompt_type"], sort=False, dropna=False)
        ]
    else:
        panels = [(family, df)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (title, part) in zip(axes[0], panels):
        _panel(ax, part, ycol, ylabel, scale, title)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    plt.close(fig)
    log.info("wrote %s (%d runs, %d panels)", path, len(df), len(panels))
    return path


def write_figures(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """`<family>_tradeoff.png` for each task family present in the summaries."""
    return [
        tradeoff_figure(part, family, Path(out_dir) / f"{family}_tradeoff.png") for family, part in df.groupby("family")
    ]


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    plt.close(fig)
    log.info("wrote %s", path)
    return path


MATCHED_COLUMNS = ("task", "top_k", "method", "metric", "level", "value", "value_lo", "value_hi")


def read_matched_fluency(path: str | Path) -> pd.DataFrame:
    """The tables stage's matched_fluency.csv: the figure plots its bootstraps instead of redoing them."""
    from bench.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: matched-fluency table not found (`bench tables --scores ...` writes it)")
    try:
        mf = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(MATCHED_COLUMNS))  # no sweep with a plain run: an empty table
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a CSV ({e}); expected `bench tables`' matched_fluency.csv") from e
    missing = [c for c in MATCHED_COLUMNS if c not in mf.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected `bench tables`' matched_fluency.csv")
    return mf


def matched_fluency_figure(mf: pd.DataFrame, path: str | Path) -> Path:
    """One panel per (task, k, metric): the metric at each PPL level with its joint-bootstrap CI, per method."""
    panels = list(mf.groupby(["task", "top_k", "metric"], sort=False)) if not mf.empty else []
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.2 * max(1, len(panels)), 4.2), squeeze=False)
    for ax, ((task, k, metric), part) in zip(axes[0], panels):
        scale = 100.0 if metric == "positive_rate" else 1.0
        methods = [m for m in method_order() if m in set(part["method"])] + sorted(
            set(part["method"]) - set(method_order())
        )
        levels = sorted(part["level"].unique())
        for j, m in enumerate(methods):
            r = part[part["method"] == m].sort_values("level")
            x = np.array([levels.index(v) for v in r["level"]], float) + (j - (len(methods) - 1) / 2) * 0.08
            y = r["value"].to_numpy(float) * scale
            err = np.nan_to_num(
                np.clip(
                    np.stack([y - r["value_lo"].to_numpy(float) * scale, r["value_hi"].to_numpy(float) * scale - y]),
                    0,
                    None,
                )
            )
            ax.errorbar(x, y, yerr=err, fmt="o-", color=method_color(m), capsize=2, markersize=4, label=method_label(m))
        ax.set_xticks(range(len(levels)), [f"{v:g}x" for v in levels])
        ax.set_xlabel("PPL level (x plain decoding's PPL)")
        ax.set_ylabel("Positive rate (%)" if metric == "positive_rate" else "Avg. max toxicity")
        ax.set_title(f"{task} (k={k})", fontsize=10)
        ax.grid(alpha=0.3)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no sweep with a plain run", ha="center", va="center")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _save(fig, path)


def reward_models_figure(folders, path: str | Path) -> Path:
    """Held-out MSE (top) and AUC (bottom) against training step, one panel column per task, one line per
    parametrization (its train_log.jsonl); a star marks the saved (best) step."""
    import json

    logs: dict[str, dict[str, tuple[pd.DataFrame, int]]] = {}
    for folder in map(Path, folders):
        summary = json.loads((folder / "train_summary.json").read_text(encoding="utf-8"))
        rows = [
            json.loads(line)
            for line in (folder / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        logs.setdefault(folder.parent.name, {})[summary["parametrization"]] = (
            pd.DataFrame(rows),
            int(summary.get("best_step", summary["steps"])),
        )
    tasks = sorted(logs)
    fig, axes = plt.subplots(2, max(1, len(tasks)), figsize=(5.2 * max(1, len(tasks)), 7), squeeze=False)
    for c, task in enumerate(tasks):
        for param in [m for m in method_order() if m in logs[task]] + sorted(set(logs[task]) - set(method_order())):
            df, best = logs[task][param]
            for r, col in enumerate(("heldout_mse", "heldout_auc")):
                if col not in df or df[col].isna().all():
                    continue
                ax = axes[r][c]
                ax.plot(df["step"], df[col], "o-", color=method_color(param), markersize=3, label=method_label(param))
                at = df[df["step"] == best]
                ax.plot(at["step"], at[col], "*", color=method_color(param), markersize=12)
        axes[0][c].set_title(task, fontsize=10)
        axes[0][c].set_ylabel("Held-out MSE")
        axes[1][c].set_ylabel("Held-out ROC-AUC")
        for r in range(2):
            axes[r][c].set_xlabel("Training step")
            axes[r][c].grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, path)
