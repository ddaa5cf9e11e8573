"""The rank sweep's table and figures (issue 30): how much rank does steering need?

One row per (task, k, metric, PPL level, method) for RAD, the rank-r ARMs (`arm-lowrank-r{r}`), full-rank
ARM + baseline and the free head: the steered metric at matched fluency with its CI, the paired differences
to RAD (`vs_rad`) and to full-rank ARM + baseline (`vs_full`), the model's held-out AUC (reward_models.csv) and
the measured effective rank of its learned matrix (rank.csv: raw and row-centred at 1e-2, and the bound).

The matched-fluency numbers come from `bench.metrics.comparisons.matched_fluency` (through
`bench.reporting.tables.matched_fluency_table`), the one implementation. It compares every method with the run
named "rad"; for `vs_full` it is called a second time on the same runs, in the same order, with full-rank
ARM + baseline named "rad" (and RAD renamed): the prompts are resampled identically (same runs, same seed), so
both differences come from one joint bootstrap and `value` is the same in both calls.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import DataError

log = logging.getLogger(__name__)

RAD = "rad"
FULL = "arm-baseline"  # full-rank ARM + baseline: the low-rank family's r = full end
FREE = "free-head"
_RAD_ALIAS = "rad (renamed)"  # RAD's name while full-rank ARM stands in as the reference
RANK_TAU = "rank_1e-2"  # the effective rank the study reports (singular values above 1e-2 of the largest)

COLUMNS = [
    "task",
    "family",
    "top_k",
    "metric",
    "level",
    "ppl_level",
    "method",
    "label",
    "kind",
    "r",
    "rank_bound",
    "hidden_size",
    "heldout_auc",
    "eff_rank",
    "eff_rank_centered",
    "betas",
    "value",
    "value_lo",
    "value_hi",
    "vs_rad",
    "vs_rad_lo",
    "vs_rad_hi",
    "vs_full",
    "vs_full_lo",
    "vs_full_hi",
    "reason",
]


def sweep_methods(methods: Sequence[str]) -> list[str]:
    """The sweep's methods among `methods`: RAD, the rank-r ARMs by r, full-rank ARM + baseline, the free head."""
    from bench.rewards.registry import PARAMETRIZATIONS

    present = set(methods)
    lowrank = sorted(
        (n for n, s in PARAMETRIZATIONS.items() if s.rank is not None and n in present),
        key=lambda n: PARAMETRIZATIONS[n].rank,
    )
    return [m for m in (RAD, *lowrank, FULL, FREE) if m in present]


def kind(method: str) -> str:
    from bench.rewards.registry import get

    if method == RAD:
        return "rad"
    if method == FULL:
        return "full"
    if method == FREE:
        return "free head"
    return "low rank" if get(method).rank is not None else "other"


def _read_csv(path: str | Path, required: Sequence[str], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; expected {what}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc}); expected {what}") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {what}")
    df.attrs["source"] = str(path)  # named in errors about its rows
    return df


def read_reward_table(path: str | Path) -> pd.DataFrame:
    return _read_csv(
        path, ["task", "parametrization", "heldout_auc"], "reward_models.csv from `bench tables --reward-models`"
    )


def read_rank_table(path: str | Path) -> pd.DataFrame:
    df = _read_csv(path, ["task", "method", "centered", RANK_TAU, "bound", "hidden_size"], "rank.csv from `bench rank`")
    df["centered"] = df["centered"].astype(str).str.lower() == "true"
    return df


def _lookup(
    df: pd.DataFrame | None,
    task_col: str,
    method_col: str,
    family: str,
    method: str,
    col: str,
    centered: bool | None = None,
) -> float:
    """One value of a reward / rank table; a sweep method missing from a table that was given is an error."""
    if df is None:
        return math.nan
    sel = (df[task_col].astype(str) == family) & (df[method_col].astype(str) == method)
    if centered is not None:
        sel &= df["centered"] == centered
    rows = df[sel]
    if rows.empty:
        raise DataError(
            f"{df.attrs.get('source', 'table')}: no row for task '{family}', {method_col} '{method}'"
            + ("" if centered is None else f", centered {centered}")
            + "; expected every method of the sweep (run its rank / reward table on the same config)"
        )
    v = rows.iloc[0][col]
    return math.nan if pd.isna(v) or v == "" else float(v)


def sweep_table(
    df: pd.DataFrame,
    levels: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    rewards: pd.DataFrame | None = None,
    ranks: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The sweep's rows (COLUMNS) from runs with a `scores_file` column (`tables.attach_scores`)."""
    from bench.reporting.tables import matched_fluency_table, method_label

    methods = sweep_methods(df["method"].unique())
    if FULL not in methods:
        raise DataError(
            f"rank sweep: no '{FULL}' runs among the summaries; the sweep compares every rank with "
            f"full-rank ARM + baseline (list it in training.parametrizations)"
        )
    keep = df[df["method"].isin(["plain", *methods])]
    vs_rad = matched_fluency_table(keep, levels, n_boot, seed)
    if vs_rad.empty:
        raise DataError("rank sweep: no matched-fluency rows (expected plain decoding and steered runs per task)")
    swap = {RAD: _RAD_ALIAS, FULL: RAD}
    vs_full = matched_fluency_table(
        keep.assign(method=keep["method"].map(lambda m: swap.get(m, m))), levels, n_boot, seed
    )
    back = {v: k for k, v in swap.items()}
    vs_full = vs_full.assign(method=vs_full["method"].map(lambda m: back.get(m, m)))
    key = ["task", "top_k", "metric", "level", "method"]
    full_cols = vs_full[key + ["value", "vs_rad", "vs_rad_lo", "vs_rad_hi"]].rename(
        columns={"value": "_value_check", "vs_rad": "vs_full", "vs_rad_lo": "vs_full_lo", "vs_rad_hi": "vs_full_hi"}
    )
    out = vs_rad[vs_rad["method"] != "plain"].merge(full_cols, on=key, how="left", validate="one_to_one")
    same = np.isclose(out["value"], out["_value_check"], equal_nan=True)
    if not same.all():  # the two calls must read the same runs; anything else is a bug, never a silent table
        raise RuntimeError("rank sweep: matched-fluency values differ between the two reference calls")
    out = out.drop(columns="_value_check")
    out.loc[out["method"] == FULL, ["vs_full", "vs_full_lo", "vs_full_hi"]] = math.nan
    rows = []
    for _, row in out.iterrows():
        m, fam = str(row["method"]), str(row["family"])
        from bench.rewards.registry import get

        r = get(m).rank if m != RAD else None
        extra = {
            "label": method_label(m),
            "kind": kind(m),
            "r": math.nan if r is None else float(r),
            "heldout_auc": _lookup(rewards, "task", "parametrization", fam, m, "heldout_auc"),
            "eff_rank": _lookup(ranks, "task", "method", fam, m, RANK_TAU, centered=False),
            "eff_rank_centered": _lookup(ranks, "task", "method", fam, m, RANK_TAU, centered=True),
            "rank_bound": _lookup(ranks, "task", "method", fam, m, "bound", centered=False),
            "hidden_size": _lookup(ranks, "task", "method", fam, m, "hidden_size", centered=False),
        }
        rows.append({**row.to_dict(), **extra})
    table = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(methods)}
    table = table.assign(_m=table["method"].map(order))
    table = table.sort_values(["family", "task", "top_k", "metric", "level", "_m"], kind="stable")
    table = table.drop(columns="_m").reset_index(drop=True)
    table["reason"] = table["reason"].fillna("")
    return table[COLUMNS]


# ------------------------------------------------------------------------------------------ writers
def _fmt(v, digits: int = 3) -> str:
    from bench.reporting.format import fmt

    return fmt(v, f".{digits}f", nan="–")


def _ci(row: pd.Series, col: str, scale: float) -> str:
    v, lo, hi = (row[col] * scale, row[f"{col}_lo"] * scale, row[f"{col}_hi"] * scale)
    if not math.isfinite(v):
        return "–"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return _fmt(v)
    return f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]"


def sweep_markdown(table: pd.DataFrame) -> str:
    """One section per (task, k, metric, level): rank, AUC, value, differences to RAD / full rank, effective ranks."""
    from bench.reporting.figures import Y_AXIS

    parts = [
        "# Rank sweep: steering at matched fluency vs. the reward matrix's rank\n",
        "r: the projection's rank (full: ARM + baseline, bound d + 1); eff. rank: singular values above 1e-2 "
        "of the largest (raw / row-centred); differences are paired, 95% bootstrap CIs in brackets.\n",
    ]
    for (task, k, metric, level), part in table.groupby(["task", "top_k", "metric", "level"], sort=False):
        scale = Y_AXIS.get(str(part["family"].iloc[0]), (None, None, 1.0))[2]
        ppl = float(part["ppl_level"].iloc[0])
        parts.append(f"\n## {task}, k={k}: {metric} at {level:g}x plain's PPL ({ppl:.1f})\n\n")
        parts.append(
            "| method | r | bound | held-out AUC | eff. rank (raw / centred) | value | vs RAD | vs full rank |\n"
        )
        parts.append("|---|---:|---:|---:|---:|---:|---:|---:|\n")
        for _, row in part.iterrows():
            r = "full" if row["kind"] in ("full", "free head") else _fmt(row["r"], 0)
            bound = _fmt(row["rank_bound"], 0)
            eff = f"{_fmt(row['eff_rank'], 0)} / {_fmt(row['eff_rank_centered'], 0)}"
            value = _ci(row, "value", scale) + (f" ({row['reason']})" if row["reason"] else "")
            parts.append(
                f"| {row['label']} | {r} | {bound} | {_fmt(row['heldout_auc'])} | {eff} | {value} | "
                f"{_ci(row, 'vs_rad', scale)} | {_ci(row, 'vs_full', scale)} |\n"
            )
    return "".join(parts)


def write_sweep_tables(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path) -> None:
    """Plain writes: the command writes into `atomic_outputs` temporaries (tables and figures appear together)."""
    with open(csv_path, "w", encoding="utf-8") as fh:
        table.to_csv(fh, index=False, lineterminator="\n")
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(sweep_markdown(table))


def figure_name(family: str) -> str:
    return f"rank_sweep_{family}.png"


def plot_sweep(table: pd.DataFrame, paths: dict[str, str | Path], top_k: int | None = None) -> None:
    """Per task family (one panel per prompt set / direction): the metric at matched fluency vs r (log axis), one
    colour per PPL level with its CI; full rank at x = d and the free head right of it, RAD's level as a band,
    RAD's effective rank marked on the axis. `top_k`: which k (default: each family's first)."""
    from bench.reporting.rank import _pyplot, _save

    plt = _pyplot()
    for family, fam in table.groupby("family", sort=False):
        k = fam["top_k"].iloc[0] if top_k is None else top_k
        fam = fam[fam["top_k"] == k]
        tasks = list(dict.fromkeys(fam["task"]))
        fig, axes = plt.subplots(1, len(tasks), figsize=(6.4 * len(tasks), 4.2), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            _plot_task(ax, plt, fam[fam["task"] == task], str(family), f"{task}: steering vs. rank (k={k})")
        _save(fig, paths[str(family)])


def _plot_task(ax, plt, part_all: pd.DataFrame, family: str, title: str) -> None:
    from bench.reporting.figures import Y_AXIS

    _, ylabel, scale = Y_AXIS.get(family, (None, str(part_all["metric"].iloc[0]), 1.0))
    d = part_all["hidden_size"].dropna()
    r_max = part_all["r"].max()
    x_full = float(d.iloc[0]) if not d.empty else float(r_max * 4 if pd.notna(r_max) else 1.0)
    colors = plt.get_cmap("viridis")
    levels = sorted(part_all["level"].unique())
    for i, level in enumerate(levels):
        c = colors(i / max(len(levels) - 1, 1) * 0.85)
        part = part_all[part_all["level"] == level]
        rad = part[part["kind"] == "rad"]
        if not rad.empty and math.isfinite(rad["value"].iloc[0]):
            lo, hi = rad["value_lo"].iloc[0], rad["value_hi"].iloc[0]
            if math.isfinite(lo) and math.isfinite(hi):
                ax.axhspan(lo * scale, hi * scale, color=c, alpha=0.12, lw=0)
            ax.axhline(rad["value"].iloc[0] * scale, color=c, ls=":", lw=1)
        line = part[part["kind"].isin(["low rank", "full"])].copy()
        line["x"] = [x_full if kd == "full" else r for kd, r in zip(line["kind"], line["r"])]
        line = line[np.isfinite(line["value"])].sort_values("x")
        if not line.empty:
            err = np.abs(np.vstack([line["value"] - line["value_lo"], line["value_hi"] - line["value"]])) * scale
            ax.errorbar(
                line["x"],
                line["value"] * scale,
                yerr=np.nan_to_num(err),
                color=c,
                marker="o",
                capsize=3,
                label=f"ARM + baseline, {level:g}x PPL (RAD: band)",
            )
        free = part[(part["kind"] == "free head") & np.isfinite(part["value"])]
        if not free.empty:
            f = free.iloc[0]
            yerr = np.nan_to_num(np.abs([[f["value"] - f["value_lo"]], [f["value_hi"] - f["value"]]])) * scale
            ax.errorbar(
                [x_full * 1.25],
                [f["value"] * scale],
                yerr=yerr,
                color=c,
                marker="*",
                ms=11,
                capsize=3,
                ls="none",
                label="free head" if i == 0 else None,
            )
    rad_rank = part_all[part_all["kind"] == "rad"]["eff_rank"].dropna()
    if not rad_rank.empty:
        ax.axvline(float(rad_rank.iloc[0]), color="0.3", ls="--", lw=1)
        ax.annotate(
            f"RAD eff. rank {int(rad_rank.iloc[0])}",
            (float(rad_rank.iloc[0]), 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="0.3",
        )
    ax.set_xscale("log", base=2)
    ranks = sorted({float(r) for r in part_all["r"].dropna()})
    ax.set_xticks([*ranks, x_full], [*(f"{r:g}" for r in ranks), f"full\n({x_full:g})"])
    ax.minorticks_off()
    ax.axvline(x_full, color="0.7", lw=0.8)
    ax.set_xlabel(f"rank r of the ARM projection (full = d = {x_full:g}; free head right of it)")
    ax.set_ylabel(f"{ylabel} at matched fluency")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    else:  # e.g. a sweep that never reaches the levels: say so instead of an empty frame
        ax.text(
            0.5,
            0.5,
            "no value at matched fluency\n(rank_sweep.md: reason)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="0.4",
        )
