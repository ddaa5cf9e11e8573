"""`bench plan`: before anything runs, the jobs and the work of each stage of a config, and at given
throughputs the hours each stage takes.

    bench plan --configfile config/paper.yaml
    bench plan --configfile config/paper.yaml --rate train=40 --rate generate=900 --rate generate.rad=300 \
        --rate score=60                       # examples/s, generated tokens/s (per method: generate.<method>), texts/s
    bench plan --configfile config/paper.yaml --from-run runs/default   # throughputs measured by a finished run
    bench plan --configfile config/paper.yaml --calibration my_gpu.json # {"train": 40, "generate": 900, ...}

Work is the config's budget: training examples = max_steps x batch_size per model (early stopping may end
sooner), tokens to generate = prompts x samples x max_new_tokens per setting, texts to score = prompts x
samples per setting. Hours = work / throughput of one job, summed over the stage's jobs (sequential hours:
divide by the jobs that run at once). Throughputs belong to the hardware AND the models they were measured
with: rates from a run of config/default.yaml (small models) underestimate a GPT-2 Large run.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

UNITS = {"train": "examples", "generate": "tokens", "score": "texts"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configfile", nargs="+", required=True, type=Path, help="config file(s), merged in order")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="STAGE[.METHOD]=PER_S",
        help="throughput of one job: train (examples/s), generate (generated tokens/s), score "
        "(texts/s); generate.<method> / train.<parametrization> for one method",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help='JSON of rates, {"train": 40, "generate": 900, "generate.rad": 300, "score": 60}',
    )
    parser.add_argument(
        "--from-run",
        type=Path,
        default=None,
        metavar="WORK_DIR",
        help="measure rates from a finished run folder (train_summary.json, generation "
        ".meta.json, score benchmark records or log times)",
    )


# ------------------------------------------------------------------------------------------------ the work
def gen_tasks(cfg: dict) -> dict[str, tuple[str, str, int]]:
    """Generation task -> (task, prompt file, prompts requested), as workflow/rules/generate.smk builds them."""
    tasks = {n: t for n, t in cfg["tasks"].items() if t.get("enabled", True)}
    out = {}
    if "toxicity" in tasks:
        t = tasks["toxicity"]
        out["toxicity"] = ("toxicity", "rtp", t["prompts"]["n"])
        for name, ps in (t.get("prompt_sets") or {}).items():
            out[f"toxicity-{name}"] = ("toxicity", f"rtp-{name}", ps["n"])
    if "sentiment" in tasks:
        t = tasks["sentiment"]
        by_type = t["prompts"].get("n_by_type") or {}
        for target, prompt_types in t["targets"].items():
            for ptype in prompt_types:
                out[f"sentiment-to-{target}-from-{ptype}"] = (
                    "sentiment",
                    f"sentiment-{ptype}",
                    by_type.get(ptype, t["prompts"]["n"]),
                )
    return out


def settings(cfg: dict, task: str) -> list[tuple[str, float, int]]:
    """(method, beta, k) of every generation of a task: plain per k, then each parametrization's beta sweep."""
    t = cfg["tasks"][task]
    out = [("plain", 0.0, k) for k in t["top_k"]] if cfg["generation"]["plain"] else []
    for p in cfg["training"]["parametrizations"]:
        out += [(p, float(b), k) for b in t.get("betas_by_method", {}).get(p, t["betas"]) for k in t["top_k"]]
    return out


def plan(cfg: dict) -> dict[str, dict]:
    """Per stage: jobs, and the work per method (training examples / tokens / texts)."""
    from bench.config import training_settings

    tasks = [n for n, t in cfg["tasks"].items() if t.get("enabled", True)]
    g = cfg["generation"]
    stages: dict[str, dict] = {}
    prep_rows = sum(p["n_train"] + p["n_heldout"] for n in tasks for p in cfg["tasks"][n]["train"])
    n_prompt_files = len({pfile for _, pfile, _ in gen_tasks(cfg).values()})
    stages["prepare"] = {
        "jobs": sum(len(cfg["tasks"][n]["train"]) for n in tasks) + n_prompt_files,
        "work": {"": prep_rows},
        "unit": "rows",
    }
    train: dict[str, int] = {}
    for task in tasks:
        for p in cfg["training"]["parametrizations"]:
            o = training_settings(cfg, task, p)
            train[p] = train.get(p, 0) + o["max_steps"] * o["batch_size"]
    stages["train"] = {"jobs": len(tasks) * len(cfg["training"]["parametrizations"]), "work": train, "unit": "examples"}
    gen: dict[str, int] = {}
    texts: dict[str, int] = {}
    jobs = 0
    for task, _pfile, n_prompts in gen_tasks(cfg).values():
        for method, _beta, _k in settings(cfg, task):
            jobs += 1
            gen[method] = gen.get(method, 0) + n_prompts * g["num_samples"] * g["max_new_tokens"]
            texts[method] = texts.get(method, 0) + n_prompts * g["num_samples"]
    stages["generate"] = {"jobs": jobs, "work": gen, "unit": "tokens"}
    stages["score"] = {"jobs": jobs, "work": texts, "unit": "texts"}
    boot = sum(n * len(settings(cfg, task)) for task, _, n in gen_tasks(cfg).values()) * cfg["statistics"]["n_boot"]
    # tables, figures, reward_table, reward_figure, cost
    stages["statistics"] = {"jobs": 5, "work": {"": boot}, "unit": "bootstrap prompt draws"}
    return stages


# ------------------------------------------------------------------------------------------------ the rates
def parse_rates(texts: list[str], where: str) -> dict[str, float]:
    from bench.errors import ConfigError

    out = {}
    for text in texts:
        key, _, value = str(text).partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = math.nan
        if key.split(".", 1)[0] not in UNITS or not (math.isfinite(rate) and rate > 0):
            raise ConfigError(
                f"{where} {text!r}: expected STAGE[.METHOD]=PER_S with STAGE one of "
                f"{', '.join(UNITS)} and a finite rate > 0"
            )
        out[key] = rate
    return out


def read_calibration(path: Path) -> dict[str, float]:
    from bench.errors import ConfigError
    from bench.utils.io import read_json

    data = read_json(path, expect=dict)
    rates = {k: v for k, v in data.items() if k.split(".", 1)[0] in UNITS}
    bad = [k for k, v in rates.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
    if bad:
        raise ConfigError(f"{path}: key {bad[0]!r} is {rates[bad[0]]!r}; expected a number (per second)")
    return parse_rates([f"{k}={v}" for k, v in rates.items()], str(path))


def _log_seconds(path: Path) -> float | None:
    """Wall time of a job from its log's first and last HH:MM:SS stamps (jobs under a day)."""
    import re

    stamps = re.findall(r"^(\d\d):(\d\d):(\d\d) ", path.read_text(encoding="utf-8", errors="replace"), re.M)
    if len(stamps) < 2:
        return None
    first, last = ((int(h) * 3600 + int(m) * 60 + int(s)) for h, m, s in (stamps[0], stamps[-1]))
    return (last - first) % 86400 or None


def _scorer_seconds(path: Path) -> tuple[float, float] | None:
    """(texts, seconds) of a score job from its scorers' lines `scored N new texts (...) at R texts/s`: every
    scorer reads every text, so the job's seconds are the sum of N / R over its scorers."""
    import re

    found = [
        (int(n), float(r))
        for n, r in re.findall(
            r"scored (\d+) new texts \(.*?\) at ([\d.]+) texts/s", path.read_text(encoding="utf-8", errors="replace")
        )
    ]
    if not found:
        return None
    found = [(n, r) for n, r in found if n > 0 and r > 0]  # none left: every text came from the score cache
    return float(max((n for n, _ in found), default=0)), sum(n / r for n, r in found)


def measured_rates(work_dir: Path) -> dict[str, float]:
    """Throughputs of one job, per stage and method, from a finished run folder: training examples_seen /
    train_seconds; generated tokens / decoding wall time; scored texts / the scorers' time (their log lines; else
    the job's wall time from its benchmark record or its log's first and last stamps, loading included)."""
    import csv

    from bench.errors import DataError
    from bench.utils.io import read_json

    if not work_dir.is_dir():
        raise DataError(f"{work_dir}: no run folder; expected a finished run's work_dir (e.g. runs/default)")
    sums: dict[str, list[float]] = {}

    def add(key, work, seconds):
        if work and seconds and math.isfinite(work) and math.isfinite(seconds) and seconds > 0:
            s = sums.setdefault(key, [0.0, 0.0])
            s[0] += work
            s[1] += seconds

    for summary in sorted(work_dir.glob("rewards/*/*/train_summary.json")):
        s = read_json(summary, expect=dict)
        p = summary.parent.name
        add(f"train.{p}", s.get("examples_seen"), s.get("train_seconds"))
        add("train", s.get("examples_seen"), s.get("train_seconds"))
    for meta_path in sorted(work_dir.glob("gen/*/*.jsonl.meta.json")):
        meta = read_json(meta_path, expect=dict)
        add(f"generate.{meta.get('method')}", meta.get("generated_tokens"), meta.get("wall_time_s"))
        add("generate", meta.get("generated_tokens"), meta.get("wall_time_s"))
    for summary in sorted(work_dir.glob("scores/*/*.csv")):
        rel = summary.relative_to(work_dir / "scores").with_suffix("")
        with open(summary, newline="", encoding="utf-8") as fh:
            row = next(csv.DictReader(fh), None)
        if not row:
            continue
        texts = float(row.get("n_samples") or 0) or float(row.get("n_prompts") or 0)
        bench_tsv = work_dir / "benchmarks" / "score" / f"{rel}.tsv"
        log = work_dir / "logs" / "score" / f"{rel}.log"
        scored = _scorer_seconds(log) if log.exists() else None
        if scored is not None:  # the scorers' own rates: model loading left out (it does not grow with the work)
            add("score", *scored)  # a job served by the cache alone adds nothing
            continue
        if bench_tsv.exists():
            from bench.reporting.cost import read_record

            seconds = read_record(bench_tsv, work_dir / "benchmarks").wall_s
        else:
            seconds = _log_seconds(log) if log.exists() else None
        add("score#wall", texts, seconds)
    wall = sums.pop("score#wall", None)
    if wall and "score" not in sums:  # job wall times only when no job logged its scorers' rates
        sums["score"] = wall
    return {k: w / s for k, (w, s) in sums.items()}


def rate_for(rates: dict[str, float], stage: str, method: str) -> float | None:
    return rates.get(f"{stage}.{method}") or rates.get(stage)


# ------------------------------------------------------------------------------------------------ output
def _big(x: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.0f}"


def render(stages: dict[str, dict], rates: dict[str, float], cfg: dict) -> str:
    lines = [
        f"plan of run '{cfg['name']}' (work_dir {cfg['work_dir']}); work is the config's budget",
        f"{'stage':<11} {'jobs':>5}  {'work':<44} {'rate (per s, one job)':<28} {'hours':>8}",
    ]
    total, unknown = 0.0, []
    for stage, s in stages.items():
        work = sum(s["work"].values())
        detail = f"{_big(work)} {s['unit']}"
        if stage == "train":
            detail += f" ({_big(work / max(s['jobs'], 1))} per model)"
        hours = None
        if stage in UNITS:
            parts = []
            for method, w in s["work"].items():
                r = rate_for(rates, stage, method)
                parts.append(None if r is None else w / r / 3600)
            if all(p is not None for p in parts):
                hours = sum(parts)
            else:
                unknown.append(stage)
        used = sorted({f"{r:.3g}" for m in s["work"] for r in [rate_for(rates, stage, m)] if r}, key=float)
        rate_txt = (
            ""
            if stage not in UNITS
            else (
                f"{'/'.join(used) if len(used) < 3 else f'{used[0]}..{used[-1]}'} {s['unit']}/s"
                if used
                else f"n/a (--rate {stage}=...)"
            )
        )
        lines.append(
            f"{stage:<11} {s['jobs']:>5}  {detail:<44} {rate_txt:<28} {'' if hours is None else f'{hours:8.1f}':>8}"
        )
        total += hours or 0.0
    lines.append(
        f"{'total':<11} {sum(s['jobs'] for s in stages.values()):>5}  {'':<44} {'':<28} {total:8.1f}"
        + (f"  (without {', '.join(unknown)}: no rate)" if unknown else "")
    )
    lines.append(
        "hours: sequential job hours at these rates (divide by the jobs running at once); "
        "prepare / statistics: no rate asked (minutes at any scale of this benchmark)"
    )
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    from bench.config import load_config

    cfg = load_config(*args.configfile)
    rates: dict[str, float] = {}
    if args.from_run:
        rates.update(measured_rates(args.from_run))
    if args.calibration:
        rates.update(read_calibration(args.calibration))
    rates.update(parse_rates(args.rate, "--rate"))
    print(render(plan(cfg), rates, cfg))
    if rates:
        print("rates: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(rates.items())))
    return 0
