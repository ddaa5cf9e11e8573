"""A run's generations and per-continuation scores as a Parquet data set with a data card.

Layout (what `datasets.load_dataset("parquet", data_files=...)` reads, and what the card's `configs` name):

    OUT/README.md                      data card: schema, provenance, prompt licenses, judges and versions
    OUT/data/continuations.parquet     one row per continuation: setting, prompt, text, every score
    OUT/data/settings.parquet          one row per setting: its decoding settings and summary statistics

Rows are in a fixed order (task, method order, beta, k, then the generation file's prompt order and sample), so
the same run exports the same rows. Scores are exactly the floats of the `bench score` JSONL (NaN = not
scored); a re-scoring group joins on (setting, prompt_id, sample).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.errors import DataError
from bench.reporting.tables import load_summaries, method_order

SCORES = ("toxicity", "positive", "ppl")
# prompt data set (`prompt_dataset` of a prompts file's .source.json) -> the license of its texts
PROMPT_LICENSES = {
    "rtp": "RealToxicityPrompts (Gehman et al., 2020): Apache-2.0; the DecodingTrust sample shipped in data/rtp/ "
    "(Wang et al., 2023): CC BY-SA 4.0",
    "sentiment": "DExperts / RAD sentiment prompts (OpenWebText excerpts): no license stated by the distributors; "
    "OpenWebText corpus: CC0-1.0",
}
COLUMN_DOCS = {
    "setting": "the run's name, `<generation task>/<method>_b<beta>_k<k>` (unique per setting)",
    "task": "generation task: `toxicity` or `sentiment-to-<target>-from-<prompt type>`",
    "family": "toxicity or sentiment",
    "method": "plain (no reward model) or a registered parametrization (rad, arm, ...)",
    "beta": "steering strength (0 for plain)",
    "top_k": "candidates kept per step",
    "prompt_id": "the prompt's id in the prepared prompt file",
    "prompt": "prompt text",
    "sample": "sample index j of the prompt (every setting decodes prompt p / sample j with the same seed)",
    "continuation": "generated text (the prompt excluded)",
    "toxicity": "toxicity judge's probability of the continuation alone (NaN: not scored / not this task)",
    "positive": "sentiment judge's probability that prompt + continuation is positive",
    "ppl": "perplexity of the continuation given the prompt under the fluency model",
}


def _run_name(summary: Path, scores_root: Path) -> str:
    return summary.relative_to(scores_root).with_suffix("").as_posix()


def find_runs(run_dir: str | Path) -> list[Path]:
    """The summary CSVs of a run's work folder (`<run_dir>/scores/<task>/<run>.csv`)."""
    root = Path(run_dir) / "scores"
    found = sorted(root.glob("*/*.csv"))
    if not found:
        raise DataError(
            f"{root}: no scored runs (expected <task>/<run>.csv from `bench score`); give a run's "
            "work folder, e.g. runs/default"
        )
    return found


def _extras(records: list[dict]) -> dict[str, list]:
    """Scalar per-prompt fields of the generations (e.g. prompt_toxicity, sentiment), one list per field."""
    keys = [
        k
        for k in dict.fromkeys(k for r in records for k in r)
        if k not in ("id", "prompt", "continuations")
        and all(r.get(k) is None or isinstance(r.get(k), (str, int, float, bool)) for r in records)
    ]
    return {k: [r.get(k) for r in records] for k in keys}


def collect(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(continuations, settings, provenance) of a run's work folder."""
    from bench.utils.io import read_json, read_jsonl

    run_dir = Path(run_dir)
    summaries = find_runs(run_dir)
    settings = load_summaries(summaries)
    scores_root = run_dir / "scores"
    settings.insert(0, "setting", [_run_name(Path(p), scores_root) for p in settings["source_file"]])
    frames, judges = [], {}
    for _, row in settings.iterrows():
        summary = Path(row["source_file"])
        scores_path = summary.with_suffix(".jsonl")
        gen_path = run_dir / "gen" / summary.relative_to(scores_root).with_suffix(".jsonl")
        for p in (scores_path, gen_path):
            if not p.exists():
                raise DataError(f"{p}: missing; expected with {summary} (a finished `bench generate` / `bench score`)")
        gens = read_jsonl(gen_path)
        prompts = {str(r["id"]): r for r in gens}
        extras = _extras(gens)
        position = {str(r["id"]): i for i, r in enumerate(gens)}
        rows = []
        for rec in read_jsonl(scores_path):
            pid = str(rec["id"])
            if pid not in prompts:
                raise DataError(f"{scores_path}: prompt id {pid!r} is not in {gen_path}")
            out = {
                "setting": row["setting"],
                "task": row["task"],
                "family": row["family"],
                "method": row["method"],
                "beta": float(row["beta"]),
                "top_k": int(row["top_k"]),
                "prompt_id": pid,
                "prompt": str(prompts[pid]["prompt"]),
                "sample": int(rec["sample"]),
                "continuation": rec["text"],
                "_order": position[pid],
            }
            for s in SCORES:
                v = rec.get(s)
                out[s] = math.nan if v is None else float(v)
            for k, vals in extras.items():
                out[f"prompt_{k}" if not k.startswith("prompt_") else k] = portable(vals[position[pid]])
            rows.append(out)
        frames.append(pd.DataFrame(rows).sort_values(["_order", "sample"], kind="stable"))
        meta_path = Path(f"{scores_path}.meta.json")
        if meta_path.exists():
            meta = read_json(meta_path, expect=dict)
            for kind in ("toxicity_scorer", "sentiment_scorer", "fluency_model"):
                name = meta.get(kind)
                version = meta.get(f"{kind}_version" if kind != "fluency_model" else "fluency_scorer_version")
                if name:
                    judges.setdefault((kind, str(name)), set()).add(str(version))
    order = {m: i for i, m in enumerate(method_order())}
    settings = settings.assign(_m=settings["method"].map(lambda m: order.get(m, len(order))))
    settings = settings.sort_values(["task", "_m", "beta", "top_k"], kind="stable").drop(columns=["_m", "source_file"])
    by_setting = {f["setting"].iloc[0]: f for f in frames}
    cont = pd.concat([by_setting[s] for s in settings["setting"]], ignore_index=True).drop(columns=["_order"])
    cont = cont.reset_index(drop=True)
    primary = {(n, v) for (_, n), vs in judges.items() for v in vs}
    for name, version, _column in _extra_judges(run_dir, cont, primary):
        judges.setdefault(("extra toxicity judge", name), set()).add(version)
    prov = {
        "run_dir": run_dir.name,
        "prompt_files": _prompt_sources(run_dir),
        "judges": [{"role": k, "name": n, "versions": sorted(v)} for (k, n), v in sorted(judges.items())],
        "base_models": sorted({str(b) for b in settings.get("base", pd.Series(dtype=str)).dropna()}),
        "environment": _environment(run_dir),
    }
    return cont, settings.reset_index(drop=True), prov


def _environment(run_dir: Path) -> str:
    """The run's software, from the `environment.json` it wrote (`bench environment`), if any."""
    from bench.utils.io import read_json

    path = run_dir / "environment.json"
    if not path.exists():
        return "not recorded (no environment.json in the run folder)"
    env = read_json(path, expect=dict)
    torch = env.get("torch") or {}
    torch = torch.get("version") if isinstance(torch, dict) else torch
    return (
        f"python {env.get('python', '?')}, torch {torch or '?'}, packages digest "
        f"`{env.get('packages_digest', '?')}` (`environment.json` of the run)"
    )


def _extra_judges(run_dir: Path, cont: pd.DataFrame, primary: set) -> list[tuple[str, str, str]]:
    """Add a `judge:<name>` column per extra toxicity judge the run's score cache holds for the toxicity
    continuations (`bench judges` scores them there); the summaries' own judges are the score columns already.
    Returns (name, version, column) of the added columns. Read-only: a running pipeline is not disturbed."""
    import sqlite3

    from bench.metrics.cache import text_hash

    path = run_dir / "cache" / "scores.sqlite"
    tox = cont["family"].astype(str) != "sentiment"
    if not path.exists() or not tox.any():
        return []
    hashes = [text_hash(t) for t in cont.loc[tox, "continuation"]]
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        con.execute("CREATE TEMP TABLE wanted (h TEXT PRIMARY KEY)")
        con.executemany("INSERT OR IGNORE INTO temp.wanted VALUES (?)", [(h,) for h in hashes])
        found = con.execute(
            "SELECT scorer, version, text_hash, score FROM scores JOIN temp.wanted ON text_hash = h"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: cannot read the score cache ({exc})") from exc
    finally:
        con.close()
    by_judge: dict[tuple[str, str], dict[str, float]] = {}
    for scorer, version, h, score in found:
        if (scorer, version) not in primary:
            by_judge.setdefault((scorer, version), {})[h] = float(score)
    names = [n for n, _ in by_judge]
    added = []
    for (name, version), values in sorted(by_judge.items()):
        column = f"judge:{name}" if names.count(name) == 1 else f"judge:{name}@{version}"
        col = pd.Series(float("nan"), index=cont.index)
        col[tox] = [values.get(h, float("nan")) for h in hashes]
        cont[column] = col
        added.append((name, version, column))
    return added


def portable(value):
    """A machine's absolute path to a data file as its path under `data/` (what the card and the rows show);
    anything else unchanged."""
    if isinstance(value, str) and value.startswith("/") and "/data/" in value:
        return value.rsplit("/data/", 1)[1]
    return value


def _prompt_sources(run_dir: Path) -> list[dict]:
    from bench.utils.io import read_json

    out = []
    for side in sorted((run_dir / "data" / "prompts").glob("*.source.json")):
        info = read_json(side, expect=dict)
        src = str(info.get("source", ""))
        shipped = portable(src)
        dataset = str(info.get("prompt_dataset") or info.get("dataset") or "")
        out.append(
            {
                "file": side.name[: -len(".source.json")],
                "dataset": dataset,
                "source": shipped,
                "prompt_set": (info.get("extra") or {}).get("prompt_set"),
                "n": info.get("written"),
                "license": PROMPT_LICENSES.get(dataset, "see the source's own license"),
            }
        )
    return out


def data_card(cont: pd.DataFrame, settings: pd.DataFrame, prov: dict) -> str:
    """The README.md of the export: a Hugging Face data card (YAML header with the two configs)."""
    lines = [
        "---",
        "configs:",
        "- config_name: continuations",
        "  default: true",
        "  data_files:",
        "  - split: train",
        "    path: data/continuations.parquet",
        "- config_name: settings",
        "  data_files:",
        "  - split: train",
        "    path: data/settings.parquet",
        "---",
        "",
        f"# Generations and per-continuation scores of the `{prov['run_dir']}` run",
        "",
        f"{len(cont)} continuations of {cont['prompt_id'].nunique()} prompts in {len(settings)} settings "
        f"({', '.join(sorted(settings['task'].unique()))}), written by `bench export`. Re-score them with "
        "your own judge and join on `(setting, prompt_id, sample)`.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("parquet", data_files="data/continuations.parquet", split="train")',
        "```",
        "",
        "## Schema: `data/continuations.parquet`",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
    ]
    for c in cont.columns:
        doc = COLUMN_DOCS.get(c) or (
            f"toxicity of the continuation alone by the extra judge `{c[len('judge:') :]}` (`bench judges`; from "
            "the run's score cache; NaN: not scored)"
            if c.startswith("judge:")
            else "a per-prompt field of the prompt file, copied from the generations"
        )
        lines.append(f"| `{c}` | {cont[c].dtype} | {doc} |")
    lines += [
        "",
        "## Schema: `data/settings.parquet`",
        "",
        "One row per setting: `setting` (the key), the decoding settings of its `bench generate` run "
        "(method, beta, top_k, direction, attribute, num_samples, max_new_tokens, seed, base, ...) and its "
        "`bench score` summary (statistics with 95% bootstrap CIs `_lo` / `_hi`, judges and versions; see "
        "docs/metrics.md of the suite).",
        "",
        "Columns: " + ", ".join(f"`{c}`" for c in settings.columns),
        "",
        "## Judges",
        "",
        "| role | name | version |",
        "|---|---|---|",
    ]
    lines += [f"| {j['role']} | `{j['name']}` | {', '.join(f'`{v}`' for v in j['versions'])} |" for j in prov["judges"]]
    lines += [
        "",
        "## Provenance and licenses",
        "",
        f"Base (generating) model(s): {', '.join(f'`{b}`' for b in prov['base_models']) or 'n/a'}.",
        "",
        f"Software: {prov['environment']}.",
        "",
        "| prompt file | data set | source | prompt set | prompts | license |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{p['file']}` | {p['dataset']} | `{p['source']}` | {p['prompt_set'] or ''} | {p['n']} | {p['license']} |"
        for p in prov["prompt_files"]
    ]
    lines += [
        "",
        "The continuations are model outputs for the prompts above; some prompts and continuations are "
        "offensive (toxicity data). Each prompt keeps its source's license.",
        "",
    ]
    return "\n".join(lines)


def write_export(run_dir: str | Path, out: str | Path) -> list[Path]:
    """Write the export (all files appear together, or none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.utils.io import atomic_outputs, check_writable

    out = Path(out)
    paths = [out / "data" / "continuations.parquet", out / "data" / "settings.parquet", out / "README.md"]
    check_writable(*paths)
    cont, settings, prov = collect(run_dir)
    with atomic_outputs(*paths) as (t_cont, t_set, t_card):  # makes the folders; all three appear, or none
        for frame, tmp in ((cont, t_cont), (settings, t_set)):
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp, compression="zstd")
        t_card.write_text(data_card(cont, settings, prov), encoding="utf-8")
    return paths
