"""A small hand-made run folder (generations, per-continuation scores, summaries) for the report and export tests.

Scores are seeded random numbers; the summaries are computed from them by the suite's own `summarize` and
written by `bench score`'s writer, exactly as `bench score` would, so a test can recompute a cell independently.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PROMPTS = [f"Prompt number {i} says" for i in range(6)]
SETTINGS = {  # generation task -> [(method, beta)]
    "toxicity": [("plain", 0.0), ("rad", 5.0), ("rad", 10.0), ("arm-baseline", 5.0)],
    "sentiment-to-positive-from-negative": [("plain", 0.0), ("rad", 5.0)],
}
N_SAMPLES = 3
PROMPT_FILES = {
    "toxicity": "rtp/decodingtrust_nontoxic.jsonl.gz",
    "sentiment": "sentiment_prompts-10k/negative_prompts.jsonl.gz",
}
ODD_TEXT = "<b>not bold</b> & <script>alert(1)</script>"  # must show as text, never as markup


def run_name(method: str, beta: float, k: int = 5) -> str:
    return f"{method}_b{beta:g}_k{k}"


def make_run(root: Path, seed: int = 0) -> Path:
    """Write `root/{gen,scores,data/prompts}` of a 6-setting run; returns `root`."""
    from bench.commands.score import SUMMARY_HEAD, write_summary
    from bench.metrics.aggregate import summarize
    from bench.metrics.diversity import distinct_per_prompt

    rng = np.random.default_rng(seed)
    for gtask, settings in SETTINGS.items():
        family = "toxicity" if gtask == "toxicity" else "sentiment"
        score = "toxicity" if family == "toxicity" else "positive"
        for method, beta in settings:
            name = run_name(method, beta)
            gens = []
            for i, p in enumerate(PROMPTS):
                conts = [f" {method} text {i}.{j} at beta {beta:g}" for j in range(N_SAMPLES)]
                if (i, method, beta) == (2, "rad", 5.0):
                    conts[1] = ODD_TEXT
                gens.append(
                    {
                        "id": f"p{i}",
                        "prompt": p,
                        "continuations": conts,
                        "prompt_toxicity": 0.1 * i,
                        "source": f"/somewhere/data/{PROMPT_FILES[family]}",
                    }
                )
            meta = {
                "method": method,
                "beta": beta,
                "top_k": 5,
                "task": gtask,
                "direction": "away" if family == "toxicity" else "toward",
                "attribute": score,
                "num_samples": N_SAMPLES,
                "max_new_tokens": 8,
                "seed": 0,
                "base": "random:tiny-gpt2",
                "reward_model": None,
            }
            rows, groups = [], {score: [], "ppl": []}
            for r in gens:
                s_vals = rng.uniform(0, 1, N_SAMPLES).round(6).tolist()
                p_vals = rng.uniform(5, 60, N_SAMPLES).round(4).tolist()
                if ODD_TEXT in r["continuations"]:
                    s_vals[r["continuations"].index(ODD_TEXT)] = 0.999999  # the setting's highest: always shown
                if r["id"] == "p3" and method == "plain":
                    s_vals[0] = None  # a text the judge could not score
                groups[score].append([float("nan") if v is None else v for v in s_vals])
                groups["ppl"].append(p_vals)
                for j, c in enumerate(r["continuations"]):
                    rows.append({"id": r["id"], "sample": j, "text": c, score: s_vals[j], "ppl": p_vals[j]})
            stats = summarize(groups, distinct_per_prompt([r["continuations"] for r in gens]), n_boot=200, seed=0)
            summary = {
                "task": gtask,
                "method": method,
                "beta": beta,
                "top_k": 5,
                "n_prompts": len(gens),
                "n_samples": len(rows),
                **stats,
                **{k: v for k, v in meta.items() if k not in SUMMARY_HEAD},
                "toxicity_scorer": "profanity-check" if score == "toxicity" else None,
                "toxicity_scorer_version": "alt-profanity-check==1.5" if score == "toxicity" else None,
                "sentiment_scorer": "tfidf-sst2" if score == "positive" else None,
                "sentiment_scorer_version": "tfidf-sst2/abc123" if score == "positive" else None,
                "fluency_model": "random:tiny-gpt2",
                "fluency_scorer_version": "ppl/def456",
            }
            for sub, content in (("gen", gens), ("scores", rows)):
                path = root / sub / gtask / f"{name}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(x) + "\n" for x in content))
            (root / "gen" / gtask / f"{name}.jsonl.meta.json").write_text(json.dumps(meta))
            (root / "scores" / gtask / f"{name}.jsonl.meta.json").write_text(
                json.dumps({k: summary[k] for k in SUMMARY_HEAD[SUMMARY_HEAD.index("toxicity_scorer") :]})
            )
            write_summary(root / "scores" / gtask / f"{name}.csv", summary)
    _score_cache(root)
    (root / "environment.json").write_text(
        json.dumps({"python": "3.11.2", "torch": {"version": "2.13.0+cpu"}, "packages_digest": "feedbeef"})
    )
    prompts = root / "data" / "prompts"
    prompts.mkdir(parents=True, exist_ok=True)
    (prompts / "rtp.jsonl.source.json").write_text(
        json.dumps(
            {
                "prompt_dataset": "rtp",
                "source": "/somewhere/data/rtp/decodingtrust_nontoxic.jsonl.gz",
                "written": 6,
                "extra": {"prompt_set": "rtp-sample"},
            }
        )
    )
    (prompts / "sentiment-negative.jsonl.source.json").write_text(
        json.dumps(
            {
                "prompt_dataset": "sentiment",
                "source": "/somewhere/data/sentiment_prompts-10k/negative_prompts.jsonl.gz",
                "written": 6,
            }
        )
    )
    return root


def run_files(root: Path) -> tuple[list[str], list[str], list[str]]:
    """(summaries, scores, generations) of `make_run`'s folder, in one order."""
    summaries = sorted(str(p) for p in (root / "scores").glob("*/*.csv"))
    scores = [s[: -len(".csv")] + ".jsonl" for s in summaries]
    gens = [s.replace(f"{root}/scores/", f"{root}/gen/", 1) for s in scores]
    return summaries, scores, gens


EXTRA_JUDGE = ("jigsaw-bilstm-tcc", "toxic-comment-classifier==0.3.0/abc")


def extra_judge_score(text: str) -> float:
    """The stand-in extra judge's score of a text (what `bench judges` would have cached)."""
    return round(len(text) % 7 / 7, 6)


def _score_cache(root: Path) -> None:
    """The run's score cache as `bench score` / `bench judges` leave it: the primary judge's scores of the toxicity
    continuations and an extra judge's scores of all but the first toxicity setting's."""
    from bench.metrics.cache import ScoreCache, text_hash

    cache = ScoreCache(root / "cache" / "scores.sqlite")
    try:
        for path in sorted((root / "scores" / "toxicity").glob("*.jsonl")):
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            primary = {text_hash(r["text"]): r["toxicity"] for r in rows if r["toxicity"] is not None}
            cache.put_many("profanity-check", "alt-profanity-check==1.5", primary)
            if path.stem != "arm-baseline_b5_k5":
                cache.put_many(*EXTRA_JUDGE, {text_hash(r["text"]): extra_judge_score(r["text"]) for r in rows})
    finally:
        cache.close()
