"""Tables and figures of the rank analysis (`bench rank`): rank.{csv,md}, rank_vs_n.{csv,md}, spectra, rank vs N.

Every rank is at most cap = min(N, C) (row-centred: min(N, C - 1)); tables carry the cap and mark a rank that
reaches it, since there the number of columns C, not the reward model, limits what can be seen.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.utils.io import atomic_open, atomic_path

RANK_COLUMNS = [
    "task",
    "method",
    "columns",
    "centered",
    "n_prefixes",
    "n_columns",
    "cap",
    "rank_1e-2",
    "rank_1e-3",
    "entropy_rank",
    "numerical_rank",
    "bound",
    "hidden_size",
]
VS_N_COLUMNS = [
    "task",
    "method",
    "centered",
    "n_prefixes",
    "n_columns",
    "cap",
    "bound",
    "rank_1e-2",
    "rank_1e-3",
    "entropy_rank",
]


def _relerr_columns(rows: list[dict]) -> list[str]:
    return sorted({k for r in rows for k in r if k.startswith("relerr_r")}, key=lambda c: int(c[len("relerr_r") :]))


def write_csv(rows: list[dict], columns: list[str], path: str | Path) -> None:
    """Tidy CSV (6 significant digits, NaN as 'nan', empty bound for unconstrained models), atomically."""
    df = pd.DataFrame([{k: ("" if v is None else v) for k, v in r.items()} for r in rows], columns=columns)
    with atomic_open(path) as fh:
        df.to_csv(fh, index=False, float_format="%.6g", na_rep="nan", lineterminator="\n")


def write_rank_csv(rows: list[dict], path: str | Path) -> None:
    write_csv(rows, RANK_COLUMNS + _relerr_columns(rows), path)


def _capped(rank: int, cap: int) -> str:
    return f"{rank}*" if rank >= cap else str(rank)


def rank_markdown(rows: list[dict]) -> str:
    """The rank table at the largest N of every (task, method), raw and row-centred."""
    rel = [c for c in _relerr_columns(rows) if int(c[len("relerr_r") :]) <= 64]
    cols = [
        "task",
        "method",
        "centred",
        "N",
        "C",
        "cap",
        "rank>1e-2",
        "rank>1e-3",
        "entropy rank",
        "num. rank",
        "ARM bound",
    ] + [c.replace("relerr_r", "err r=") for c in rel]
    out = [
        "# Rank of reward matrices",
        "",
        "R[prefix, token] of the steering attribute, R[x, v] = r(BOS + x + v), over N prefixes and C token columns "
        "shared by all prefixes. Effective rank = #{sigma_i/sigma_1 > tau}; entropy rank = exp(H(sigma/sum sigma)); "
        "num. rank counts sigma_i/sigma_1 > 1e-6 (float32 round-off); err r = relative Frobenius error of the "
        "best rank-r approximation; ARM bound = the rank ARM's construction allows (token part + 1 with a "
        "baseline); cap = min(N, C) (row-centred: min(N, C - 1)), the most any N x C matrix can have. "
        "A `*` marks a rank at the cap: there C or N, not the model, limits it.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        vals = [
            r["task"],
            r["method"],
            "yes" if r["centered"] else "no",
            r["n_prefixes"],
            r["n_columns"],
            r["cap"],
            _capped(r["rank_1e-2"], r["cap"]),
            _capped(r["rank_1e-3"], r["cap"]),
            f"{r['entropy_rank']:.1f}",
            _capped(r["numerical_rank"], r["cap"]),
            r["bound"] if r["bound"] is not None else "-",
        ]
        vals += [f"{r[c]:.3g}" if not math.isnan(r.get(c, math.nan)) else "-" for c in rel]
        out.append("| " + " | ".join(str(v) for v in vals) + " |")
    return "\n".join(out) + "\n"


def rank_vs_n_markdown(rows: list[dict]) -> str:
    """Effective rank against N per (task, method, centring), one table per threshold, with the cap row."""
    sizes = sorted({r["n_prefixes"] for r in rows})
    c = sorted({r["n_columns"] for r in rows})
    out = [
        "# Effective rank vs. number of prefixes N",
        "",
        f"Columns: C = {', '.join(map(str, c))} token ids shared by all prefixes; the first N prefixes of one seeded "
        "order (nested random subsets). A rank that stays below N as N grows is evidence of low rank; one that "
        "tracks N (y = x) is not. `*` = at the cap min(N, C) (row-centred min(N, C - 1)): beyond it C, not the "
        "model, limits the rank.",
    ]
    if sizes and c and max(sizes) > min(c):
        out.append(f"Here C caps the rank for N > {min(c)}: those cells cannot separate 'tracks N' from 'plateaus'.")
    keys = sorted({(r["task"], r["method"], r["centered"]) for r in rows}, key=lambda k: (k[0], k[2], k[1]))
    by = {(r["task"], r["method"], r["centered"], r["n_prefixes"]): r for r in rows}
    for tau in ("1e-2", "1e-3"):
        out += [
            "",
            f"## sigma_i / sigma_1 > {tau}",
            "",
            "| task | method | centred | ARM bound | " + " | ".join(f"N={n}" for n in sizes) + " |",
            "|" + "---|" * (4 + len(sizes)),
        ]
        for task, method, centred in keys:
            cells = []
            bound = "-"
            for n in sizes:
                r = by.get((task, method, centred, n))
                if r is None:
                    cells.append("")
                    continue
                bound = r["bound"] if r["bound"] is not None else "-"
                cells.append(_capped(r[f"rank_{tau}"], r["cap"]))
            out.append(f"| {task} | {method} | {'yes' if centred else 'no'} | {bound} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_text(text: str, path: str | Path) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_spectra(spectra: dict[tuple[str, str], dict[bool, Any]], path: str | Path) -> None:
    """sigma_i / sigma_1 against i, one row of panels per task (R as is | rows centred), one line per method."""
    plt = _pyplot()
    tasks = sorted({t for t, _ in spectra})
    fig, axes = plt.subplots(len(tasks), 2, figsize=(9, 3.4 * len(tasks)), sharey=True, squeeze=False)
    for row, task in enumerate(tasks):
        for ax, centered in zip(axes[row], (False, True)):
            for (t, method), sp in sorted(spectra.items()):
                if t != task:
                    continue
                s = sp[centered].normalised.numpy()
                s = s[s > 0]
                ax.plot(range(1, len(s) + 1), s, label=method)
            for tau in (1e-2, 1e-3):
                ax.axhline(tau, color="gray", lw=0.6, ls=":")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("index i")
            ax.set_title(f"{task}: " + ("rows centred" if centered else "R as is"), fontsize=9)
        axes[row][0].set_ylabel("sigma_i / sigma_1")
        axes[row][0].legend(fontsize=7)
    _save(fig, path)


def plot_rank_vs_n(rows: list[dict], path: str | Path, tau: str = "1e-3") -> None:
    """Effective rank against N per method (log-log), with y = x (full rank), the cap min(N, C) and ARM bounds."""
    plt = _pyplot()
    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(len(tasks), 2, figsize=(9, 3.6 * len(tasks)), sharex=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = sorted({r["method"] for r in rows})
    for row, task in enumerate(tasks):
        for ax, centered in zip(axes[row], (False, True)):
            sub = [r for r in rows if r["task"] == task and r["centered"] == centered]
            ns = sorted({r["n_prefixes"] for r in sub})
            if not ns:
                continue
            ax.plot(ns, ns, color="k", ls="--", lw=1, label="y = N (full rank)")
            caps = sorted({(r["n_prefixes"], r["cap"]) for r in sub})
            ax.plot([n for n, _ in caps], [c for _, c in caps], color="gray", lw=3, alpha=0.35, label="cap min(N, C)")
            for i, method in enumerate(methods):
                pts = sorted((r["n_prefixes"], r[f"rank_{tau}"]) for r in sub if r["method"] == method)
                if not pts:
                    continue
                color = colors[i % len(colors)]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, color=color, label=method)
                bound = next((r["bound"] for r in sub if r["method"] == method), None)
                if bound is not None and bound <= 2 * max(ns):
                    ax.axhline(bound, color=color, ls=":", lw=1)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log", base=2)
            ax.set_xlabel("number of prefixes N")
            ax.set_title(f"{task}: " + ("rows centred" if centered else "R as is"), fontsize=9)
        axes[row][0].set_ylabel(f"effective rank (sigma_i/sigma_1 > {tau})")
        axes[row][0].legend(fontsize=6, title="dotted: ARM bound", title_fontsize=6)
    _save(fig, path)
