"""`bench score`: per-continuation scores (JSONL) and a one-row tidy summary (CSV) of one generations file.

Toxicity is scored on the continuation alone (RealToxicityPrompts protocol); sentiment on prompt +
continuation (as RAD/DExperts do); fluency is the continuation's perplexity given the prompt. Every score
goes through the content-addressed cache (`--cache`), so a text is never scored twice across runs.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
from pathlib import Path

from bench.errors import ConfigError, DataError, ModelError
from bench.utils.argtypes import positive_int

log = logging.getLogger(__name__)

METRICS = ("toxicity", "sentiment", "fluency", "diversity")
SUMMARY_HEAD = [
    "task",
    "method",
    "beta",
    "top_k",
    "n_prompts",
    "n_samples",
    "avg_max_toxicity",
    "avg_max_toxicity_lo",
    "avg_max_toxicity_hi",
    "toxic_rate",
    "toxic_rate_lo",
    "toxic_rate_hi",
    "positive_rate",
    "positive_rate_lo",
    "positive_rate_hi",
    "ppl",
    "ppl_lo",
    "ppl_hi",
    "ppl_gmean",
    "ppl_gmean_lo",
    "ppl_gmean_hi",
    "dist1",
    "dist2",
    "dist3",
    "n_nan",
    "n_dropped_ppl",
    "n_empty",
    "toxicity_scorer",
    "toxicity_scorer_version",
    "sentiment_scorer",
    "sentiment_scorer_version",
    "fluency_model",
    "fluency_scorer_version",
]
# generation-meta fields that describe one execution, not the result: kept out of summaries and tables so the
# same config and seed give byte-identical tables, interrupted or not (timings and counters of the work done by
# this execution live in the generations' .meta.json and in latency; `reward_calls` counts only the prompts a
# resumed run generated). The resume digests are provenance kept in the .meta.json, not result columns.
RUN_SPECIFIC_META = frozenset(
    {
        "tokens_per_s",
        "wall_time_s",
        "generated_tokens",
        "resumed_prompts",
        "out",
        "device",
        "python",
        "torch",
        "transformers",
        "reward_calls",
        "reward_digest",
        "base_digest",
        "sha256",
    }
)
SCORER_FIELDS = SUMMARY_HEAD[SUMMARY_HEAD.index("toxicity_scorer") :]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bench.metrics.fluency import DEFAULT_FLUENCY_MODEL

    p.add_argument("--generations", required=True, help="generations JSONL (next to it: <file>.meta.json)")
    p.add_argument(
        "--metrics", default="toxicity,fluency,diversity", help=f"comma-separated subset of {','.join(METRICS)}"
    )
    p.add_argument(
        "--toxicity-scorer",
        default="profanity-check",
        help="profanity-check | jigsaw-bilstm-toxblock | jigsaw-bilstm-tcc | detoxify:<variant|path.ckpt> | "
        "perspective",
    )
    p.add_argument("--sentiment-scorer", default=None, help="tfidf-sst2:<model.json> | vader | hf:<model>")
    p.add_argument(
        "--fluency-model",
        default=DEFAULT_FLUENCY_MODEL,
        help="scoring LM spec; if the default cannot load, the run's base LM is used (and named)",
    )
    p.add_argument("--fluency-batch-size", type=positive_int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", help="fluency LM dtype")
    p.add_argument(
        "--cache", default=None, help="SQLite score cache shared by concurrent jobs and reruns (default: no cache)"
    )
    p.add_argument("--out-scores", required=True, help="per-continuation scores JSONL")
    p.add_argument("--out-summary", required=True, help="one-row summary CSV")
    p.add_argument("--n-boot", type=positive_int, default=1000, help="bootstrap resamples over prompts")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def read_generations(path: str | Path) -> tuple[list[dict], dict]:
    from bench.utils.io import DIGEST_KEY, iter_jsonl, read_json, verify_digest

    meta_path = Path(f"{path}.meta.json")
    if not meta_path.exists():
        raise DataError(f"{meta_path}: not found; `bench generate` writes it next to the generations file")
    meta = read_json(meta_path, expect=dict)
    check_generation_meta(meta, meta_path)
    if Path(path).is_file():
        verify_digest(path, meta.get(DIGEST_KEY), meta_path)
    records = []
    for lineno, rec in iter_jsonl(path):
        for key in ("id", "prompt", "continuations"):
            if key not in rec:
                raise DataError(f"{path}: line {lineno}: missing key '{key}'; expected {{id, prompt, continuations}}")
        if not isinstance(rec["continuations"], list) or not all(isinstance(c, str) for c in rec["continuations"]):
            raise DataError(f"{path}: line {lineno}: 'continuations' must be a list of strings")
        if not rec["continuations"]:
            raise DataError(f"{path}: line {lineno}: 'continuations' is empty; expected at least one sample per prompt")
        records.append(rec)
    if not records:
        raise DataError(f"{path}: no generations")
    return records, meta


def check_generation_meta(meta: dict, meta_path: str | Path) -> None:
    """The settings every later stage reads (summary columns, table rows): present and usable, or one line now
    instead of a blank row or a crash in `bench tables`."""
    import math

    def bad(key: str, expected: str) -> DataError:
        got = f"= {meta[key]!r}" if key in meta else "missing"
        return DataError(f"{meta_path}: key '{key}' {got}; expected {expected} (the settings `bench generate` writes)")

    for key in ("method", "task"):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            hint = (
                ' (generated without `bench generate --task`: rerun it with --task NAME, or set "task" here)'
                if key == "task" and meta.get(key) is None and key in meta
                else ""
            )
            raise DataError(str(bad(key, "a non-blank string")) + hint)
    beta = meta.get("beta")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise bad("beta", "a finite number >= 0")
    k = meta.get("top_k")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise bad("top_k", "an integer >= 1")


def parse_metrics(spec: str) -> list[str]:
    metrics = [m.strip() for m in spec.split(",") if m.strip()]
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise ConfigError(f"--metrics: unknown {bad}; expected a comma-separated subset of {','.join(METRICS)}")
    return metrics


def _fluency(args, meta: dict):
    from bench.metrics.fluency import DEFAULT_FLUENCY_MODEL, FluencyConfig, PerplexityScorer

    spec = args.fluency_model
    try:
        return PerplexityScorer(FluencyConfig(spec, args.fluency_batch_size, args.device, args.dtype)), spec
    except (ModelError, OSError, ValueError) as exc:
        if spec != DEFAULT_FLUENCY_MODEL or not meta.get("base"):
            raise
        log.warning(
            "fluency model %s cannot be loaded (%s); falling back to the run's base LM %s", spec, exc, meta["base"]
        )
        spec = str(meta["base"])
        return PerplexityScorer(FluencyConfig(spec, args.fluency_batch_size, args.device, args.dtype)), spec


def _nan_to_none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def score_generations(
    records: list[dict],
    meta: dict,
    metrics: list[str],
    toxicity=None,
    sentiment=None,
    fluency=None,
    cache=None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[list[dict], dict]:
    """Pure scoring step (scorers passed in): per-continuation rows and the summary row."""
    from bench.metrics.aggregate import summarize
    from bench.metrics.cache import score_texts
    from bench.metrics.diversity import distinct_per_prompt
    from bench.metrics.pairs import CachedPerplexity

    flat = [(r, j, c) for r in records for j, c in enumerate(r["continuations"])]
    columns: dict[str, list[float]] = {}
    summary: dict = {}
    if "toxicity" in metrics:
        columns["toxicity"], _ = score_texts(toxicity, [c for _, _, c in flat], cache, "toxicity")
        summary.update(toxicity_scorer=toxicity.name, toxicity_scorer_version=toxicity.version)
    if "sentiment" in metrics:
        columns["positive"], _ = score_texts(sentiment, [r["prompt"] + c for r, _, c in flat], cache, "sentiment")
        summary.update(sentiment_scorer=sentiment.name, sentiment_scorer_version=sentiment.version)
    if "fluency" in metrics:
        ppl_scorer, tag = fluency
        wrapped = CachedPerplexity(ppl_scorer, tag)
        columns["ppl"], _ = score_texts(wrapped, [wrapped.key(r["prompt"], c) for r, _, c in flat], cache, "perplexity")
        summary.update(fluency_model=tag, fluency_scorer_version=wrapped.version)
    rows = []
    for k, (r, j, c) in enumerate(flat):
        row = {"id": str(r["id"]), "sample": j, "text": c}
        for name, vals in columns.items():
            row[name] = _nan_to_none(vals[k])
        rows.append(row)
    groups: dict[str, list[list[float]]] = {name: [] for name in columns}
    k = 0
    for r in records:
        n = len(r["continuations"])
        for name, vals in columns.items():
            groups[name].append(vals[k : k + n])
        k += n
    dist = distinct_per_prompt([r["continuations"] for r in records]) if "diversity" in metrics else None
    stats = summarize(groups, dist, n_boot=n_boot, seed=seed)
    head = {
        "task": meta.get("task"),
        "method": meta.get("method"),
        "beta": meta.get("beta"),
        "top_k": meta.get("top_k"),
        "n_prompts": len(records),
        "n_samples": len(flat),
        "n_empty": n_empty(c for _, _, c in flat),
    }
    summary = {**head, **stats, **summary}
    for key, value in meta.items():  # the run's settings become columns (scalars only; no timings)
        if key in RUN_SPECIFIC_META:
            continue
        if key not in summary and (value is None or isinstance(value, (str, int, float, bool))):
            summary[key] = value
    return rows, summary


def n_empty(texts) -> int:
    """Degenerate continuations: empty or whitespace only (the model stopped at once, or produced only spaces).
    They stay in the result (a method that collapses is a finding) and are counted in the summary and tables."""
    return sum(1 for t in texts if not t.strip())


def write_summary(path: str | Path, summary: dict, into: str | Path | None = None) -> None:
    from bench.utils.io import atomic_open

    cols = SUMMARY_HEAD + [k for k in summary if k not in SUMMARY_HEAD]
    with open(into, "w", encoding="utf-8") if into else atomic_open(path) as fh:  # rows end in "\n"
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerow({k: ("" if _nan_to_none(summary.get(k)) is None else summary.get(k)) for k in cols})


def run(args: argparse.Namespace) -> int:
    from bench.metrics.cache import ScoreCache
    from bench.metrics.registry import build_scorer
    from bench.models.loading import resolve_device
    from bench.utils.io import DIGEST_KEY, atomic_outputs, check_writable, sha256_file, write_json, write_jsonl

    outputs = (args.out_scores, f"{args.out_scores}.meta.json", args.out_summary)
    check_writable(*outputs)  # before any model is loaded or text scored
    if args.cache:  # SQLite writes the cache and its -wal / -shm files next to it
        check_writable(args.cache, f"{args.cache}-wal")
    metrics = parse_metrics(args.metrics)
    if "sentiment" in metrics and not args.sentiment_scorer:
        raise ConfigError(
            "--metrics includes sentiment: give --sentiment-scorer (tfidf-sst2:<model.json>, vader, hf:<model>)"
        )
    records, meta = read_generations(args.generations)
    device = str(resolve_device(args.device))
    args.device = device
    tox = build_scorer(args.toxicity_scorer, device=device) if "toxicity" in metrics else None
    sent = build_scorer(args.sentiment_scorer, device=device) if "sentiment" in metrics else None
    for s, want in ((tox, "toxicity"), (sent, "positive")):
        if s is not None and s.attribute != want:
            raise ConfigError(f"scorer '{s.name}' scores '{s.attribute}', used here for '{want}'")
    flu = _fluency(args, meta) if "fluency" in metrics else None
    cache = ScoreCache(args.cache) if args.cache else None
    try:
        rows, summary = score_generations(records, meta, metrics, tox, sent, flu, cache, args.n_boot, args.seed)
    finally:
        if cache:
            cache.close()
    # cache hits are run-specific: logged and kept in the scores' meta, never in the summary (tables stay identical)
    cache_stats = cache.hit_stats() if cache else None
    if cache_stats:
        t = cache_stats["total"]
        log.info(
            "score cache %s: %d hits, %d misses (hit rate %s)",
            cache_stats["path"],
            t["hits"],
            t["misses"],
            "n/a" if t["hit_rate"] is None else f"{t['hit_rate']:.1%}",
        )
    with atomic_outputs(*outputs) as (tmp_scores, tmp_meta, tmp_summary):  # all three appear, or none
        write_jsonl(args.out_scores, rows, into=tmp_scores)
        write_json(
            f"{args.out_scores}.meta.json",
            {k: summary.get(k) for k in SCORER_FIELDS}
            | {
                "generations": str(args.generations),
                "metrics": metrics,
                "cache": cache_stats,
                DIGEST_KEY: sha256_file(tmp_scores),
            },
            into=tmp_meta,
        )  # `bench tables` verifies it
        write_summary(args.out_summary, summary, into=tmp_summary)
    if summary["n_empty"]:
        log.warning(
            "%s: %d of %d continuations are empty or whitespace only (degenerate; counted as n_empty)%s",
            args.generations,
            summary["n_empty"],
            summary["n_samples"],
            ": every metric of this run is about empty text" if summary["n_empty"] == summary["n_samples"] else "",
        )
    log.info(
        "scored %d continuations of %d prompts -> %s, %s",
        summary["n_samples"],
        summary["n_prompts"],
        args.out_scores,
        args.out_summary,
    )
    return 0
